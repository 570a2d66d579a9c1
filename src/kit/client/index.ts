/**
 * The client kit: @grpc/grpc-js channels that balance every RPC over a headless Service (dns:/// +
 * round_robin) or over xDS, with mTLS from rotating files and a retry/timeout service config.
 * docs/kit-client.md.
 */
export { createChannel, createChannelOptions, createClient, type ClientConstructor } from './client.ts';
export { createChannelCredentials, serverIdentityChecker } from './credentials.ts';
export { LastGoodCertificateProvider } from './last-good-provider.ts';
export { buildServiceConfig, type ServiceConfigJson } from './service-config.ts';
export { parseTarget, type ParsedTarget } from './target.ts';
export { CLIENT_DEFAULTS, type ClientKitOptions, type ClientTlsOptions, type MethodOptions, type RetryOptions } from './options.ts';
