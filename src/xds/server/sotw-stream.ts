/** StreamAggregatedResources: state-of-the-world ADS (sotw-subscription.ts has the rules). */
import type { ResourceType } from '../protos.ts';
import { TYPE_URL } from '../protos.ts';
import type { EncodedResponse } from './response-encoder.ts';
import { AdsStream, type AdsRequestMessage, type Answer } from './ads-stream.ts';
import { SotwSubscription, type SotwPlan } from './sotw-subscription.ts';

export interface DiscoveryRequestMessage extends AdsRequestMessage {
  readonly version_info?: string;
  readonly resource_names?: readonly string[];
}

export class SotwStream extends AdsStream<DiscoveryRequestMessage, SotwPlan> {
  protected receive(type: ResourceType, request: DiscoveryRequestMessage): Answer {
    let subscription = this.subscriptions.get(type) as SotwSubscription | undefined;
    if (!subscription) {
      subscription = new SotwSubscription(type);
      this.subscriptions.set(type, subscription);
    }
    return subscription.receive(
      {
        resourceNames: request.resource_names ?? [],
        nonce: request.response_nonce ?? '',
        error: request.error_detail ? (request.error_detail.message ?? '') : undefined,
      },
      this.context.limits.max_resource_names,
    );
  }

  protected encode(type: ResourceType, plan: SotwPlan, previousNonce: string): EncodedResponse {
    const { logger, encoder } = this.context;
    const response = encoder.sotw(TYPE_URL[type], plan.version, plan.resources, previousNonce);
    if (logger.isLevelEnabled('debug')) logger.debug({ node: this.nodeId, type, version: plan.version, resources: plan.resources.length, nonce: response.nonce }, 'xDS response sent');
    return response;
  }
}
