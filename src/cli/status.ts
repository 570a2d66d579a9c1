/**
 * `switchyard status`: what a running proxy believes about its endpoints, as
 * a table (the way `istioctl proxy-config endpoints` prints Envoy's), read
 * from the admin interface's /clusters.
 */
import type { ClusterView } from '../admin/admin-views.ts';

export const DEFAULT_ADMIN = '127.0.0.1:9902';

const COLUMNS = ['CLUSTER', 'ENDPOINT', 'STATUS', 'HEALTH CHECK', 'OUTLIER', 'WEIGHT', 'ACTIVE', 'RPCS', 'LATENCY', 'CONNS'] as const;

/** Prints the table (or the JSON with `json`); resolves with the exit code. */
export async function printStatus(admin: string, options: { json?: boolean; write?: (text: string) => void } = {}): Promise<number> {
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const url = `http://${admin}/clusters`;
  let clusters: ClusterView[];
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    if (!response.ok) throw new Error(`${url} answered ${response.status}: ${(await response.text()).trim()}`);
    clusters = ((await response.json()) as { clusters: ClusterView[] }).clusters;
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    process.stderr.write(`switchyard status: cannot read ${url}: ${cause ?? (error as Error).message}\n(is the proxy running with an admin section in its config? use --admin HOST:PORT)\n`);
    return 1;
  }
  if (options.json) {
    write(`${JSON.stringify(clusters, null, 2)}\n`);
    return 0;
  }
  write(formatStatusTable(clusters));
  return 0;
}

export function formatStatusTable(clusters: readonly ClusterView[]): string {
  const rows: string[][] = [];
  for (const cluster of clusters) {
    if (cluster.endpoints.length === 0) rows.push([cluster.name, '(none)', '', '', '', '', '', '', '', '']);
    for (const endpoint of cluster.endpoints) {
      rows.push([
        cluster.name,
        endpoint.address,
        endpoint.available ? 'AVAILABLE' : 'UNAVAILABLE',
        endpoint.inConnectBackoff ? `${endpoint.health}, connect backoff` : endpoint.health,
        endpoint.ejected ? `ejected (${endpoint.ejectionReason ?? 'unknown'})` : 'ok',
        endpoint.weight === endpoint.configuredWeight ? String(endpoint.weight) : `${endpoint.weight}/${endpoint.configuredWeight}`,
        String(endpoint.activeRpcs),
        String(endpoint.totalRpcs),
        endpoint.latencyEwmaMs === undefined ? '-' : `${endpoint.latencyEwmaMs.toFixed(1)}ms`,
        String(endpoint.connections),
      ]);
    }
  }
  const widths = COLUMNS.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => `${cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()}\n`;
  return line(COLUMNS) + rows.map(line).join('');
}
