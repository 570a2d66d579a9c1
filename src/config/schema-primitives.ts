/** Field types shared by the config schema's sections. */
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { GRPC_STATUS_BY_NAME } from '../grpc/status.ts';

/** setTimeout fires at once (with only a warning) for anything longer, so no duration may exceed it. */
const MAX_DURATION_MS = 2 ** 31 - 1;

/** `number 30`, `boolean true`, `null`, `array`, `object`: enough to see what was written instead. */
export function describeInput(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${value}`;
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

export const duration = z
  .string({ error: (issue) => `expected a duration with a unit such as "250ms", "5s", "1m" or "2h", got ${describeInput(issue.input)}` })
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as "250ms", "5s", "1m" or "2h", got "${text}"` });
      return z.NEVER;
    }
    // Zero would mean a busy loop for refresh_interval and an instant failure for timeouts.
    if (ms < 1 || ms > MAX_DURATION_MS) {
      ctx.addIssue({ code: 'custom', message: `expected a duration from 1ms to 24.8 days (2^31-1 ms), got "${text}"` });
      return z.NEVER;
    }
    return ms;
  });

/** A gRPC status as a name (`UNAVAILABLE`, case-insensitive) or a number 0-16. */
export const statusCode = z.union([
  z.number().int().min(0).max(16),
  z.string().transform((name, ctx) => {
    const code = GRPC_STATUS_BY_NAME.get(name.toUpperCase());
    if (code === undefined) {
      ctx.addIssue({ code: 'custom', message: `unknown gRPC status "${name}"; expected a name such as PERMISSION_DENIED or a number 0-16` });
      return z.NEVER;
    }
    return code;
  }),
]);


const HOST_PATTERN = /^(\*|(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*)$/;
/** A host a route serves: `example.com`, `*.example.com` or `*`, lower-cased. */
export const hostPattern = z.string().transform((host) => host.toLowerCase()).pipe(z.string().regex(HOST_PATTERN, 'expected a host name, "*.<domain>" or "*"'));
