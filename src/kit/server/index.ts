/** The server kit: what a @grpc/grpc-js service needs behind a balancer (docs/kit-server.md). */
export { serverOptions, SERVER_DEFAULTS, CLIENT_KIT_KEEPALIVE_MS, MIN_PING_INTERVAL_TO_PERMIT_MS, type ServerOptionsInput } from './options.ts';
export { startHealthServer, HEALTH_MAX_MESSAGE_BYTES, HEALTH_MAX_CONCURRENT_STREAMS, type HealthServer, type HealthServerOptions } from './health-server.ts';
export {
  gracefulShutdown,
  SHUTDOWN_DEFAULTS,
  type GracefulShutdown,
  type GracefulShutdownOptions,
  type ShutdownEvent,
  type ShutdownLogger,
  type ShutdownResult,
  type ShutdownStep,
} from './graceful-shutdown.ts';
