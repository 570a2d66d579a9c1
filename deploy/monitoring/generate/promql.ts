/**
 * PromQL fragments the dashboards and alerts share, so "an error" or "a share" means the same thing
 * on every panel.
 */

/** Statuses that say the serving side failed, not that the request was wrong (docs/observability.md). */
export const SERVER_ERROR_CODES = 'UNKNOWN|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|INTERNAL|UNAVAILABLE|DATA_LOSS';

/**
 * RPCs the proxy itself failed: the `reason` label of grpc_server_handled_total carries a stable code
 * from the failure catalogue (src/grpc/failures.ts) when the proxy chose the status, and is empty when
 * a backend answered. A direct_response route can answer OK with a reason, hence the status too.
 */
export const FAILED_REASON = 'grpc_code!="OK", reason!=""';
/** Failures a backend answered with (no catalogue reason: the status is the backend's). */
export const BACKEND_FAILURE = 'grpc_code!="OK", reason=""';

/** A label selector with the dashboard's filters first; `extra` is more matchers, comma-separated. */
export function selector(filters: readonly string[], extra = ''): string {
  return `{${[...filters, ...(extra === '' ? [] : [extra])].join(', ')}}`;
}

export function rate(metric: string, matchers: string, window = '$__rate_interval'): string {
  return `rate(${metric}${matchers}[${window}])`;
}
