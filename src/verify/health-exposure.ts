/**
 * health: from wherever verify runs, try each backend's health port and the
 * proxy's admin port. They are for kubelet and monitoring only (a
 * NetworkPolicy, or a loopback bind); if one answers from here, anyone on this
 * network can read health states, metrics or the admin API. A refused or
 * timed-out connection passes; one that answers in HTTP/1.x, HTTP/2 (gRPC) or
 * TLS fails.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Progress } from './progress.ts';
import type { CheckResult } from './report.ts';
import { callUnary, statusName, targetClient } from './target.ts';

export interface ExposureTarget {
  /** host:port */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** What it is, for the report: "backend health", "admin". */
  readonly kind: string;
}

export interface HealthExposureOptions {
  readonly targets: readonly ExposureTarget[];
  /** For the TCP connect and for an answer. */
  readonly timeoutMs: number;
}

export interface ProbeOutcome {
  readonly reachable: boolean;
  /** What happened, in a few words: "refused (ECONNREFUSED)", "answers HTTP/1.1 200 OK". */
  readonly what: string;
}

export async function runHealthExposure(options: HealthExposureOptions, progress: Progress): Promise<CheckResult> {
  const started = performance.now();
  progress.start('health', `probing ${options.targets.length} address(es) that should not be reachable from here`);
  let done = 0;
  const outcomes = await Promise.all(options.targets.map(async (target) => {
    const outcome = await probe(target.host, target.port, options.timeoutMs);
    progress.update(`${++done}/${options.targets.length} probed`);
    return { target, outcome };
  }));
  progress.end();
  const exposed = outcomes.filter(({ outcome }) => outcome.reachable);
  const details = outcomes.map(({ target, outcome }) => `${outcome.reachable ? 'REACHABLE' : 'closed   '}  ${target.address} (${target.kind}): ${outcome.what}`);
  const data = { probes: outcomes.map(({ target, outcome }) => ({ address: target.address, kind: target.kind, reachable: outcome.reachable, what: outcome.what })) };
  const durationMs = performance.now() - started;
  if (exposed.length > 0) {
    const list = exposed.map(({ target, outcome }) => `${target.address} (${target.kind}) ${outcome.what}`).join('; ');
    return { check: 'health', passed: false, reason: `reachable from here: ${list}; restrict it (NetworkPolicy, bind to loopback)`, details, data, durationMs };
  }
  return { check: 'health', passed: true, reason: `none of ${outcomes.length} health/admin address(es) reachable from here`, details, data, durationMs };
}

/** Connects, asks in HTTP/1.1, and classifies what comes back; then tries TLS if nothing did. */
export async function probe(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  const plain = await plainProbe(host, port, timeoutMs);
  if (plain.kind === 'unreachable') return { reachable: false, what: plain.what };
  if (plain.kind === 'http1') return { reachable: true, what: `answers ${plain.what}` };
  if (plain.kind === 'http2') return { reachable: true, what: `answers HTTP/2 (gRPC)${await grpcHealth(host, port, timeoutMs)}` };
  if (plain.kind === 'other') return { reachable: true, what: `answers (${plain.what})` };
  // Accepted, then closed or silent: perhaps a TLS port, which drops plaintext without a word.
  const handshake = await tlsProbe(host, port, timeoutMs);
  if (handshake) return { reachable: true, what: `accepts TLS connections (${handshake})` };
  return { reachable: false, what: `accepted the TCP connection but ${plain.what}, and refused TLS: nothing answers` };
}

type PlainProbe = { kind: 'unreachable' | 'http1' | 'http2' | 'other' | 'silent'; what: string };

const HTTP1_REQUEST = (host: string) => `GET / HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: switchyard-verify\r\nConnection: close\r\n\r\n`;
/** HTTP/2 frame types a server sends first or in answer to garbage: SETTINGS, GOAWAY. */
const H2_SETTINGS = 0x4;
const H2_GOAWAY = 0x7;
const TLS_ALERT = 0x15;
const TLS_HANDSHAKE = 0x16;

function plainProbe(host: string, port: number, timeoutMs: number): Promise<PlainProbe> {
  return new Promise((resolve) => {
    let connected = false;
    let received = Buffer.alloc(0);
    const socket = net.connect({ host, port });
    const finish = (result: PlainProbe) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => {
      finish(connected ? classify(received) ?? { kind: 'silent', what: `said nothing for ${timeoutMs} ms` } : { kind: 'unreachable', what: `no connection within ${timeoutMs} ms (filtered)` });
    }, timeoutMs);
    socket.on('connect', () => {
      connected = true;
      socket.write(HTTP1_REQUEST(host));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const verdict = classify(received);
      if (verdict) finish(verdict);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (!connected) finish({ kind: 'unreachable', what: `refused (${error.code ?? error.message})` });
    });
    socket.on('close', () => {
      if (connected) finish(classify(received, true) ?? { kind: 'silent', what: 'closed it without answering' });
    });
  });
}

/** What the first bytes are; undefined while too few have come to tell (`final`: no more will come). */
function classify(bytes: Buffer, final = false): PlainProbe | undefined {
  if (bytes.length === 0) return undefined;
  if (bytes[0] === TLS_ALERT || bytes[0] === TLS_HANDSHAKE) return { kind: 'other', what: 'a TLS record' };
  if (bytes[0] === 0x48 /* H */) {
    if (bytes.length < 5 && !final) return undefined;
    if (bytes.subarray(0, 5).toString('latin1') === 'HTTP/') {
      const end = bytes.indexOf('\r\n');
      if (end < 0 && !final) return undefined;
      return { kind: 'http1', what: bytes.subarray(0, end < 0 ? Math.min(bytes.length, 60) : end).toString('latin1') };
    }
  }
  if (bytes.length < 9 && !final) return undefined;
  if (bytes.length >= 9 && bytes[0] === 0 && (bytes[3] === H2_SETTINGS || bytes[3] === H2_GOAWAY)) return { kind: 'http2', what: 'HTTP/2' };
  return { kind: 'other', what: `${bytes.length} byte(s) of an unknown protocol` };
}

/** ", health Check: SERVING" style detail from a gRPC health Check over h2c; empty if it cannot say. */
async function grpcHealth(host: string, port: number, timeoutMs: number): Promise<string> {
  const address = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  const client = await targetClient({ address, plaintext: true });
  try {
    const result = await callUnary(client, { method: '/grpc.health.v1.Health/Check', request: Buffer.alloc(0), metadata: [], timeoutMs });
    return `, grpc.health.v1 Check: ${statusName(result.code)}`;
  } finally {
    client.close();
  }
}

/** The negotiated protocol if a TLS handshake (no client certificate, any server certificate) completes. */
function tlsProbe(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'], ...(net.isIP(host) === 0 && { servername: host }) });
    const finish = (result: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on('secureConnect', () => finish(`${socket.getProtocol() ?? 'TLS'}${socket.alpnProtocol ? `, ALPN ${socket.alpnProtocol}` : ''}`));
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
  });
}
