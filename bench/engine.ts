/**
 * Measurements of the HTTP/2 engine beside the main rounds: a TLS round
 * (TLS 1.3 on the client side, one certificate for Switchyard and HAProxy),
 * and Switchyard's allocation per RPC and GC time per 100k RPCs, read from
 * its own /metrics around a closed-loop run.
 */
import path from 'node:path';
import { writeFileSync, readFileSync } from 'node:fs';
import type { AllocationResult, Context, TlsRow } from './context.ts';
import { runToEnd, freePort } from './proc.ts';
import { closedLoop, disturbed } from './rounds.ts';
import { median } from './stats.ts';
import { startHaproxy, startSwitchyard, type BenchCertificate, type Target } from './targets.ts';

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** A self-signed P-256 certificate for localhost / 127.0.0.1, made with openssl in the run's dir. */
export async function benchCertificate(dir: string): Promise<BenchCertificate> {
  const cert = path.join(dir, 'bench-cert.pem');
  const key = path.join(dir, 'bench-key.pem');
  const made = await runToEnd('openssl', 'openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert,
  ]);
  if (made.code !== 0) throw new Error(`openssl could not make the bench certificate: ${made.stderr.trim()}`);
  const combined = path.join(dir, 'bench-combined.pem');
  writeFileSync(combined, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  return { cert, key, combined };
}

/** Closed-loop RPC/s and CPU over TLS, Switchyard and HAProxy interleaved over the rounds. */
export async function tlsRound(ctx: Context): Promise<TlsRow[]> {
  const certificate = await benchCertificate(ctx.dir);
  const targets: Target[] = [await startSwitchyard(ctx.backends, ctx.dir, { name: 'switchyard-tls', tls: certificate })];
  if (ctx.tools.haproxy) targets.push(await startHaproxy(ctx.tools.haproxy, ctx.backends, ctx.dir, certificate));
  const rows: TlsRow[] = targets.map((t) => ({ target: t.name, rps: [], cpuPer100k: [], foreignCores: [] }));
  try {
    for (const target of targets) await closedLoop(target, ctx); // warm-up: handshakes, JIT
    for (let round = 1; round <= ctx.params.rounds; round++) {
      for (const [i, target] of targets.entries()) {
        await ctx.quiet();
        const sample = await closedLoop(target, ctx);
        rows[i]!.rps.push(sample.rps);
        rows[i]!.cpuPer100k.push(sample.cpuPer100k);
        rows[i]!.foreignCores.push(sample.foreignCores);
        ctx.log(`TLS round ${round} ${target.name}: ${fmt(sample.rps)} RPC/s, ${fmt(sample.cpuPer100k, 2)} CPU s/100k${disturbed(sample.foreignCores)}`);
      }
    }
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
  }
  return rows;
}

/** Sums every sample of `name` in a Prometheus text exposition. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * A fresh Switchyard with its admin interface on: bytes the JS heap allocated (switchyard_heap_allocated_bytes_total)
 * and GC time (nodejs_gc_duration_seconds_sum, every kind) over closed-loop runs, per RPC.
 */
export async function allocation(ctx: Context): Promise<AllocationResult> {
  const adminPort = await freePort();
  const target = await startSwitchyard(ctx.backends, ctx.dir, { name: 'switchyard-alloc', adminPort });
  const scrape = async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    return { allocated: metricSum(text, 'switchyard_heap_allocated_bytes_total'), gcSeconds: metricSum(text, 'nodejs_gc_duration_seconds_sum') };
  };
  const result: AllocationResult = { bytesPerRpc: [], gcMsPer100k: [] };
  try {
    await closedLoop(target, ctx); // warm-up
    for (let round = 1; round <= ctx.params.rounds; round++) {
      await ctx.quiet();
      const before = await scrape();
      const sample = await closedLoop(target, ctx);
      const after = await scrape();
      result.bytesPerRpc.push((after.allocated - before.allocated) / sample.succeeded);
      result.gcMsPer100k.push(((after.gcSeconds - before.gcSeconds) * 1000 * 1e5) / sample.succeeded);
      ctx.log(`allocation round ${round}: ${fmt(result.bytesPerRpc.at(-1)!)} bytes allocated per RPC, ${fmt(result.gcMsPer100k.at(-1)!, 1)} ms of GC per 100k RPCs (${fmt(sample.rps)} RPC/s)`);
    }
    result.medianBytesPerRpc = median(result.bytesPerRpc);
    result.medianGcMsPer100k = median(result.gcMsPer100k);
  } finally {
    await target.stop();
  }
  return result;
}
