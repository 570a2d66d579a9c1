/**
 * `switchyard demo` (npm start): three demo backends, a per-connection L4
 * balancer and Switchyard in front of the same three, and one client
 * connection to each balancer sending the same traffic. A live table shows
 * where each balancer's RPCs land.
 */
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { parseConfigObject } from '../config/load.ts';
import { Switchyard } from '../switchyard.ts';
import { loadEchoPackage, startEchoServer, type EchoClient, type EchoServerHandle } from './echo-service.ts';
import { startL4Balancer } from './l4-balancer.ts';

const BACKENDS = 3;
const CONCURRENCY = 8;
const REFRESH_MS = 500;
const LOG_REFRESH_MS = 5_000;

export interface DemoOptions {
  /** Stop after this long; undefined: run until SIGINT/SIGTERM. */
  readonly durationMs?: number | undefined;
  readonly output?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** The embedded default config: one h2c listener on loopback, one round_robin cluster. */
export function demoConfig(backendPorts: readonly number[]) {
  return parseConfigObject(
    {
      listeners: [{ name: 'demo', address: '127.0.0.1', port: 0, plaintext: true }],
      clusters: [{ name: 'echo', lb_policy: 'round_robin', endpoints: backendPorts.map((port) => ({ address: '127.0.0.1', port })) }],
      routes: [
        { match: { service: 'switchyard.demo.v1.Echo' }, cluster: 'echo' },
        { match: { prefix: '/' }, direct_response: { code: 'PERMISSION_DENIED', message: 'only the Echo service is routed' } },
      ],
      // The dashboard shows the per-RPC balance live; port 0 so the demo never clashes with a running proxy.
      admin: { port: 0 },
      log_level: 'warn',
    },
    '(embedded demo config)',
  );
}

export async function runDemo(options: DemoOptions = {}): Promise<void> {
  const out = options.output ?? process.stdout;
  const backends: EchoServerHandle[] = [];
  for (let i = 0; i < BACKENDS; i++) backends.push(await startEchoServer({ name: `backend-${i}` }));
  const ports = backends.map((b) => b.port);
  const proxy = await Switchyard.start({ config: demoConfig(ports), logger: pino({ level: 'warn' }) });
  const l4 = await startL4Balancer(ports);
  const proxyPort = proxy.listeners[0]!.address.port;

  const { Echo } = loadEchoPackage();
  const lanes = [
    { label: 'L4, per connection', client: new Echo(`127.0.0.1:${l4.port}`, grpc.credentials.createInsecure()), counts: new Map<string, number>() },
    { label: 'Switchyard, per RPC', client: new Echo(`127.0.0.1:${proxyPort}`, grpc.credentials.createInsecure()), counts: new Map<string, number>() },
  ];

  out.write(`Switchyard demo: backends on ${ports.map((p) => `127.0.0.1:${p}`).join(', ')}\n`);
  out.write(`  L4 balancer on 127.0.0.1:${l4.port}, Switchyard on 127.0.0.1:${proxyPort}\n`);
  out.write(`  live dashboard: http://127.0.0.1:${proxy.adminAddress!.port}/dashboard  (switchyard status --admin 127.0.0.1:${proxy.adminAddress!.port})\n`);
  out.write(`  each client sends ${CONCURRENCY} concurrent unary RPCs over ONE HTTP/2 connection. Ctrl-C to stop.\n\n`);

  let running = true;
  const drive = async (client: EchoClient, counts: Map<string, number>) => {
    while (running) {
      const backend = await new Promise<string | undefined>((resolve) =>
        client.Unary({}, new grpc.Metadata(), {}, (error, response) => resolve(error ? undefined : response?.backend)),
      );
      if (backend) counts.set(backend, (counts.get(backend) ?? 0) + 1);
    }
  };
  const drivers = lanes.flatMap((lane) => Array.from({ length: CONCURRENCY }, () => drive(lane.client, lane.counts)));

  const render = tableRenderer(lanes, backends.map((b) => b.name), out);
  // A log file gets a table every few seconds, not a redraw twice a second.
  const timer = setInterval(render, out.isTTY ? REFRESH_MS : LOG_REFRESH_MS);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (options.durationMs !== undefined) setTimeout(stop, options.durationMs).unref();
  });
  clearInterval(timer);
  running = false;
  render();
  out.write('\n');
  await Promise.all(drivers);
  for (const lane of lanes) lane.client.close();
  await l4.close();
  await proxy.stop(1_000);
  await Promise.all(backends.map((b) => b.close()));
}

interface Lane {
  readonly label: string;
  readonly counts: Map<string, number>;
}

/** Returns a function that draws the share table, in place on a terminal, appended otherwise. */
function tableRenderer(lanes: readonly Lane[], backendNames: readonly string[], out: NodeJS.WritableStream & { isTTY?: boolean }): () => void {
  const BAR = 20;
  let drawnLines = 0;
  return () => {
    const lines: string[] = [];
    for (const lane of lanes) {
      const total = [...lane.counts.values()].reduce((a, b) => a + b, 0);
      lines.push(`${lane.label.padEnd(22)} ${String(total).padStart(8)} RPCs`);
      for (const name of backendNames) {
        const share = total === 0 ? 0 : (lane.counts.get(name) ?? 0) / total;
        const filled = Math.round(share * BAR);
        lines.push(`    ${name.padEnd(12)} ${'█'.repeat(filled)}${'·'.repeat(BAR - filled)} ${(share * 100).toFixed(1).padStart(5)}%`);
      }
    }
    if (!out.isTTY) {
      out.write(`${lines.join('\n')}\n\n`);
      return;
    }
    // Redraw in place: move up over the last table, clearing each line's tail.
    if (drawnLines > 0) out.write(`\x1b[${drawnLines}A`);
    out.write(lines.map((line) => `${line}\x1b[K`).join('\n') + '\n');
    drawnLines = lines.length;
  };
}
