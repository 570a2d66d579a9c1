/** Config of the admin interface and of the metrics it serves. */
import { isIP } from 'node:net';
import { z } from 'zod';
import { duration } from './schema-primitives.ts';

/** Addresses that only this machine can reach. */
export function isLoopbackAddress(address: string): boolean {
  if (address === 'localhost') return true;
  if (isIP(address) === 4) return address.startsWith('127.');
  return address === '::1' || address === '::ffff:127.0.0.1';
}

export const adminSettings = z
  .strictObject({
    /** Loopback unless allow_remote is set: the admin interface can drain the proxy and shows its whole config. */
    address: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    /** Set to bind a non-loopback address. Anyone who can reach it can drain the proxy. */
    allow_remote: z.boolean().default(false),
  })
  .superRefine((value, ctx) => {
    if (!isLoopbackAddress(value.address) && !value.allow_remote) {
      ctx.addIssue({
        code: 'custom',
        path: ['address'],
        message: `"${value.address}" is not a loopback address; the admin interface can drain the proxy, so it binds only to loopback unless allow_remote: true`,
      });
    }
  });

/**
 * Switchyard's own readiness and liveness endpoint (HTTP/1.1 /ready and /live,
 * gRPC health), on a port of its own. Whoever reaches the port can open
 * connections to it, so it holds few and not for long.
 */
export const healthSettings = z.strictObject({
  address: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
  /**
   * Connections open at once; more are closed as they arrive. Probes open
   * one at a time (kubelet a fresh one per probe), so 100 is generous.
   */
  max_connections: z.number().int().min(1).max(100_000).default(100),
  /** A connection with nothing received for this long is closed (before its first request, after 2 s at most). */
  idle_timeout: duration.default(5_000),
});

const GRPC_METHOD = /^\/[^/\s]+\/[^/\s]+$/;

export const metricsSettings = z.strictObject({
  /**
   * Methods (`/pkg.Service/Method`) that always get their own label values.
   * Methods named by a route's `method` match are added to these.
   */
  methods: z.array(z.string().regex(GRPC_METHOD, 'expected "/package.Service/Method"')).default([]),
  /**
   * Other methods get their own label values once a backend has answered one
   * with a status other than UNIMPLEMENTED, up to this many; the rest are
   * counted as grpc_service="unknown", grpc_method="unknown".
   */
  max_methods: z.number().int().min(0).max(10_000).default(200),
});

export type AdminSettings = z.output<typeof adminSettings>;
export type MetricsSettings = z.output<typeof metricsSettings>;
