/**
 * Channel options, channels and clients that balance every RPC over all the addresses of a name.
 */
import * as grpc from '@grpc/grpc-js';
import { CLIENT_DEFAULTS, requireNumber, type ClientKitOptions } from './options.ts';
import { buildServiceConfig } from './service-config.ts';
import { ensureXdsRegistered, parseTarget } from './target.ts';
import { createChannelCredentials } from './credentials.ts';

/** A generated client class (`grpc.makeGenericClientConstructor`, `loadPackageDefinition`, or protoc output). */
export type ClientConstructor<T extends grpc.Client> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => T;

/**
 * The channel options the kit sets: the service config (round_robin for DNS targets, retries and
 * timeouts), retries on, keepalive, and faster DNS re-resolution. Throws on a bad option.
 */
export function createChannelOptions(options: ClientKitOptions): grpc.ChannelOptions {
  const target = parseTarget(options.target);
  const keepaliveMs = requireNumber('keepaliveMs', options.keepaliveMs ?? CLIENT_DEFAULTS.keepaliveMs, 1_000);
  const serviceConfig = buildServiceConfig(options, target.scheme === 'dns');
  const channelOptions: grpc.ChannelOptions = {
    'grpc.service_config': JSON.stringify(serviceConfig),
    // A TXT record must not replace the service config above (and with it round_robin).
    'grpc.service_config_disable_resolution': 1,
    'grpc.enable_retries': 1,
    'grpc.keepalive_time_ms': keepaliveMs,
    'grpc.keepalive_timeout_ms': Math.min(CLIENT_DEFAULTS.keepaliveTimeoutMs, keepaliveMs),
  };
  if (target.scheme === 'dns') {
    channelOptions['grpc.dns_min_time_between_resolutions_ms'] = requireNumber(
      'dnsMinResolutionIntervalMs',
      options.dnsMinResolutionIntervalMs ?? CLIENT_DEFAULTS.dnsMinResolutionIntervalMs,
      0,
    );
  }
  return { ...channelOptions, ...options.channelOptions };
}

/** The target string, after checking it and registering xDS support when it is an xds: target. */
function prepareTarget(options: ClientKitOptions): string {
  if (parseTarget(options.target).scheme === 'xds') ensureXdsRegistered();
  return options.target;
}

/** A channel to share between several generated clients (pass it as `{ channelOverride }`). */
export function createChannel(options: ClientKitOptions): grpc.Channel {
  const channelOptions = createChannelOptions(options);
  return new grpc.Channel(prepareTarget(options), createChannelCredentials(options.tls), channelOptions);
}

/** A generated client whose channel balances per RPC, retries, and reloads its certificates. */
export function createClient<T extends grpc.Client>(Client: ClientConstructor<T>, options: ClientKitOptions): T {
  const channelOptions = createChannelOptions(options);
  return new Client(prepareTarget(options), createChannelCredentials(options.tls), channelOptions);
}
