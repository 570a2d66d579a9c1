/** DeltaAggregatedResources: incremental ADS (delta-subscription.ts has the rules). */
import type { ResourceType } from '../protos.ts';
import { TYPE_URL } from '../protos.ts';
import type { EncodedResponse } from './response-encoder.ts';
import { AdsStream, type AdsRequestMessage, type Answer } from './ads-stream.ts';
import { DeltaSubscription, type DeltaPlan } from './delta-subscription.ts';

export interface DeltaDiscoveryRequestMessage extends AdsRequestMessage {
  readonly resource_names_subscribe?: readonly string[];
  readonly resource_names_unsubscribe?: readonly string[];
  readonly initial_resource_versions?: Readonly<Record<string, string>>;
}

export class DeltaStream extends AdsStream<DeltaDiscoveryRequestMessage, DeltaPlan> {
  protected receive(type: ResourceType, request: DeltaDiscoveryRequestMessage): Answer {
    let subscription = this.subscriptions.get(type) as DeltaSubscription | undefined;
    if (!subscription) {
      subscription = new DeltaSubscription(type);
      this.subscriptions.set(type, subscription);
    }
    return subscription.receive(
      {
        subscribe: request.resource_names_subscribe ?? [],
        unsubscribe: request.resource_names_unsubscribe ?? [],
        initialVersions: new Map(Object.entries(request.initial_resource_versions ?? {})),
        nonce: request.response_nonce ?? '',
        error: request.error_detail ? (request.error_detail.message ?? '') : undefined,
      },
      this.context.limits.max_resource_names,
    );
  }

  protected encode(type: ResourceType, plan: DeltaPlan, previousNonce: string): EncodedResponse {
    const { logger, encoder } = this.context;
    const response = encoder.delta(TYPE_URL[type], plan.systemVersion, plan.resources, plan.removed, previousNonce);
    if (logger.isLevelEnabled('debug')) {
      logger.debug({ node: this.nodeId, type, systemVersion: plan.systemVersion, resources: plan.resources.length, removed: plan.removed.length, nonce: response.nonce }, 'xDS delta response sent');
    }
    return response;
  }
}
