/**
 * Config for keeping RPCs alive through failures: active health checks,
 * outlier ejection, retries and their budget, circuit breakers, slow start,
 * draining the proxy itself. docs/resilience.md explains how they interact.
 */
import { z } from 'zod';
import { duration, statusCode } from './schema-primitives.ts';

export const healthCheck = z
  .strictObject({
    /** Service name sent in grpc.health.v1.HealthCheckRequest; "" asks about the server as a whole. */
    service: z.string().default(''),
    /** Check a separate health port on each endpoint instead of the serving port. */
    port: z.number().int().min(1).max(65535).optional(),
    interval: duration.default(5_000),
    /** Up to this much is added at random to each interval, so checks from many proxies don't align. */
    interval_jitter: duration.default(1_000),
    timeout: duration.default(1_000),
    /** Consecutive failed checks before a healthy endpoint is marked unhealthy. */
    unhealthy_threshold: z.number().int().min(1).max(100).default(3),
    /** Consecutive passed checks before an unhealthy endpoint takes traffic again. */
    healthy_threshold: z.number().int().min(1).max(100).default(2),
  })
  .superRefine((value, ctx) => {
    if (value.timeout >= value.interval) ctx.addIssue({ code: 'custom', path: ['timeout'], message: 'timeout must be shorter than interval' });
  });

export const outlierDetection = z.strictObject({
  /** Consecutive gateway errors (UNAVAILABLE, connect failures, resets) that eject an endpoint; 0 turns this off. */
  consecutive_gateway_errors: z.number().int().min(0).max(1_000).default(5),
  /** Consecutive errors with a status in error_codes that eject an endpoint; 0 turns this off. */
  consecutive_errors: z.number().int().min(0).max(1_000).default(0),
  error_codes: z.array(statusCode).default([]),
  /** How often success rates are compared. */
  interval: duration.default(10_000),
  /** Success-rate outliers: endpoints far below the cluster's mean success rate. */
  success_rate: z
    .strictObject({
      /** Endpoints with at least request_volume RPCs in the interval needed before rates are compared. */
      minimum_hosts: z.number().int().min(1).default(3),
      request_volume: z.number().int().min(1).default(100),
      /** Ejected when below mean − stdev_factor × stdev. */
      stdev_factor: z.number().min(0).default(1.9),
    })
    .optional(),
  /** The first ejection lasts this long; each further one longer (base × count), up to max_ejection_time. */
  base_ejection_time: duration.default(30_000),
  max_ejection_time: duration.default(300_000),
  /** Never eject more than this share of the cluster, whatever the errors say. */
  max_ejection_percent: z.number().int().min(0).max(100).default(50),
});

export const RETRY_CONDITIONS = ['cancelled', 'deadline_exceeded', 'internal', 'resource_exhausted', 'unavailable', 'connect_failure', 'reset', 'refused_stream'] as const;

export const retryPolicy = z.strictObject({
  /** gRPC statuses (lower case) and transport failures that are retried. */
  retry_on: z.array(z.enum(RETRY_CONDITIONS)).min(1).default(['unavailable', 'connect_failure', 'refused_stream']),
  num_retries: z.number().int().min(0).max(10).default(2),
  /** Each attempt's own timeout, within the RPC's overall deadline. Unset: the overall deadline alone. */
  per_try_timeout: duration.optional(),
  /** Exponential backoff with full jitter between attempts. */
  base_interval: duration.default(25),
  max_interval: duration.default(250),
  /** Requests larger than this are not buffered, so not retried. */
  max_buffered_bytes: z.number().int().min(0).max(64 << 20).default(64 << 10),
});

export const circuitBreakers = z.strictObject({
  /** HTTP/2 connections to all endpoints of the cluster together. */
  max_connections: z.number().int().min(1).default(1_024),
  /** RPCs waiting for a connection or a stream slot. */
  max_pending_requests: z.number().int().min(0).default(1_024),
  /** RPCs in flight to the cluster. */
  max_requests: z.number().int().min(1).default(10_000),
  /** Retries in flight to the cluster. */
  max_retries: z.number().int().min(0).default(64),
});

export const retryBudget = z.strictObject({
  /** Retries in flight may be at most this percentage of the RPCs in flight... */
  budget_percent: z.number().min(0).max(100).default(20),
  /**
   * ...but this many are always allowed, so a quiet cluster can still retry. Higher than Envoy's 3:
   * a retry holds its slot through its backoff, and with fast RPCs a few clients keep several in backoff at once.
   */
  min_retry_concurrency: z.number().int().min(0).default(10),
});

/** The resilience fields of a cluster, merged into the cluster schema. */
export const clusterResilience = {
  health_check: healthCheck.optional(),
  /** With every endpoint unhealthy or ejected: send to all anyway (fail_open), or answer UNAVAILABLE (fail_closed). */
  all_unhealthy: z.enum(['fail_open', 'fail_closed']).default('fail_open'),
  outlier_detection: outlierDetection.prefault({}),
  circuit_breakers: circuitBreakers.prefault({}),
  retry_budget: retryBudget.prefault({}),
  /** PING each upstream connection this often; one that does not answer within keepalive_timeout is closed. */
  keepalive_interval: duration.default(30_000),
  keepalive_timeout: duration.default(10_000),
  /**
   * Bytes a backend may send on one stream before the proxy has passed them on to the client: the most
   * the proxy holds per stream for a client that does not read. Raise it for backends far away (a window
   * per round trip bounds one stream's throughput).
   */
  upstream_stream_window: z.number().int().min(65_535).max(2 ** 31 - 1).default(64 << 10),
  /**
   * Streams the proxy opens on one backend connection at most (fewer if the backend's
   * SETTINGS_MAX_CONCURRENT_STREAMS says so); past it another connection is opened. A backend buffers up
   * to a window per stream it is answering: Node's HTTP/2 servers refuse new streams past 10 MiB of that
   * per connection (ENHANCE_YOUR_CALM), which 100 streams of 64 KiB stay under.
   */
  max_streams_per_connection: z.number().int().min(1).max(2 ** 31 - 1).default(100),
  /** A new endpoint's weight ramps from 10% to full over this window. Unset: full weight at once. */
  slow_start_window: duration.optional(),
};

export const drainSettings = z.strictObject({
  /** After SIGTERM, keep serving (while reporting not-ready) this long, so outer balancers stop sending. */
  delay: duration.default(5_000),
  /** In-flight RPCs may take this long to finish after GOAWAY; then the rest are reset and the process exits. */
  timeout: duration.default(30_000),
});

/** The proxy's own memory limit (src/resilience/overload.ts). */
export const overloadSettings = z.strictObject({
  /** Past this resident size, new RPCs are refused with UNAVAILABLE. `auto`: 90% of the container's memory limit, if it has one. */
  max_memory_mb: z.union([z.literal('auto'), z.number().int().min(1).max(1 << 24)]).default('auto'),
});
