/**
 * PromQL fragments the dashboards and alerts share, so "an error" or "a share" means the same thing
 * on every panel.
 */

/** Statuses that say the serving side failed, not that the request was wrong (docs/observability.md). */
export const SERVER_ERROR_CODES = 'UNKNOWN|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|INTERNAL|UNAVAILABLE|DATA_LOSS';

/**
 * The `reason` label of grpc_server_handled_total: a stable code from the failure catalogue, empty
 * or `ok` for an RPC that succeeded. "By catalogue reason" panels leave successes out with this.
 */
export const FAILED_REASON = 'reason!~"|ok"';

/** A label selector with the dashboard's filters first; `extra` is more matchers, comma-separated. */
export function selector(filters: readonly string[], extra = ''): string {
  return `{${[...filters, ...(extra === '' ? [] : [extra])].join(', ')}}`;
}

export function rate(metric: string, matchers: string, window = '$__rate_interval'): string {
  return `rate(${metric}${matchers}[${window}])`;
}
