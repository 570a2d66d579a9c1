/**
 * xds: the control plane hands out every route, cluster and endpoint address,
 * so its ADS port must take only mutually authenticated TLS. Two tries, each
 * an ADS stream with a DiscoveryRequest for listeners: over cleartext HTTP/2
 * (h2c), and over TLS without a client certificate (trusting any server
 * certificate: this is the attacker's view). Each must be refused: at the
 * handshake, or for TLS with UNAUTHENTICATED/PERMISSION_DENIED. A plaintext
 * port that speaks gRPC at all fails, and either try that gets a
 * DiscoveryResponse fails.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import type { Progress } from './progress.ts';
import type { CheckResult } from './report.ts';
import { statusName } from './target.ts';

export interface ControlPlaneOptions {
  /** host:port of the ADS server. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
}

export type AdsProbe =
  | { readonly kind: 'refused'; readonly what: string }
  | { readonly kind: 'silent'; readonly what: string }
  | { readonly kind: 'status'; readonly code: number; readonly message: string }
  | { readonly kind: 'response'; readonly bytes: number };

const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const LISTENER_TYPE = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const NODE_ID = 'switchyard-verify';

export async function runControlPlane(options: ControlPlaneOptions, progress: Progress): Promise<CheckResult> {
  const started = performance.now();
  progress.start('xds', `plaintext and certificate-less TLS ADS streams to ${options.address}`);
  const [plain, anonymous] = await Promise.all([adsProbe(options, false), adsProbe(options, true)]);
  progress.end();

  const problems: string[] = [];
  if (plain.kind === 'response') problems.push(`plaintext (h2c) was accepted: it served a DiscoveryResponse (${plain.bytes} bytes) without TLS`);
  else if (plain.kind === 'status') problems.push(`plaintext (h2c) was accepted: the port speaks gRPC without TLS (the ADS stream got ${statusName(plain.code)}${plain.message ? `: ${plain.message}` : ''})`);
  if (anonymous.kind === 'response') problems.push(`TLS without a client certificate was accepted: it served a DiscoveryResponse (${anonymous.bytes} bytes)`);

  const details = [`plaintext h2c:               ${describe(plain)}`, `TLS, no client certificate:  ${describe(anonymous)}`];
  const data = { address: options.address, plaintext: probeData(plain), tls_without_client_certificate: probeData(anonymous) };
  const durationMs = performance.now() - started;
  if (problems.length > 0) {
    return { check: 'xds', passed: false, reason: `${problems.join('; ')}; the ADS port must require mTLS`, details, data, durationMs };
  }
  return { check: 'xds', passed: true, reason: `${options.address} refused plaintext (${short(plain)}) and TLS without a client certificate (${short(anonymous)})`, details, data, durationMs };
}

function describe(probe: AdsProbe): string {
  switch (probe.kind) {
    case 'refused': return `refused: ${probe.what}`;
    case 'silent': return `no answer: ${probe.what}`;
    case 'status': return `ADS stream ended ${statusName(probe.code)}${probe.message ? `: ${probe.message}` : ''}`;
    case 'response': return `ACCEPTED: got a DiscoveryResponse of ${probe.bytes} bytes`;
  }
}

function short(probe: AdsProbe): string {
  return probe.kind === 'status' ? statusName(probe.code) : probe.kind === 'refused' ? probe.what : `no answer`;
}

function probeData(probe: AdsProbe): Record<string, unknown> {
  switch (probe.kind) {
    case 'status': return { outcome: 'status', code: statusName(probe.code), message: probe.message };
    case 'response': return { outcome: 'discovery_response', bytes: probe.bytes };
    default: return { outcome: probe.kind, detail: probe.what };
  }
}

/** Opens an ADS stream, sends one DiscoveryRequest, and reports the first thing that comes back. */
export function adsProbe(options: ControlPlaneOptions, useTls: boolean): Promise<AdsProbe> {
  const authority = isIP(options.host) === 6 ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
  return new Promise((resolve) => {
    let settled = false;
    let answered = false;
    let received = Buffer.alloc(0);
    let secured = false;
    /** The socket's own error (a TLS alert), which http2 does not always pass on. */
    let socketError: string | undefined;
    const session = http2.connect(`${useTls ? 'https' : 'http'}://${authority}`, {
      createConnection: () => {
        const socket = useTls
          ? tls.connect({ host: options.host, port: options.port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...(isIP(options.host) === 0 && { servername: options.host }) })
          : net.connect({ host: options.host, port: options.port });
        socket.on(useTls ? 'secureConnect' : 'connect', () => { secured = true; });
        socket.on('error', (error: NodeJS.ErrnoException) => { socketError ??= error.code ?? error.message; });
        return socket;
      },
    });
    const finish = (probe: AdsProbe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(probe);
    };
    const timer = setTimeout(() => finish({ kind: 'silent', what: `nothing within ${options.timeoutMs} ms` }), options.timeoutMs);
    const refused = (fallback: string): AdsProbe => ({ kind: 'refused', what: closedHow(useTls, secured, socketError, fallback) });
    session.on('error', (error: NodeJS.ErrnoException) => finish(refused(error.code ?? error.message)));
    session.on('close', () => finish(refused('the connection was closed')));
    const stream = session.request({
      ':method': 'POST',
      ':path': ADS_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'switchyard-verify',
    });
    stream.on('error', () => {});
    stream.on('response', (headers) => {
      answered = true;
      if (headers['grpc-status'] !== undefined) finish(statusProbe(headers));
      else if (headers[':status'] !== 200) finish({ kind: 'refused', what: `HTTP ${headers[':status']}` });
    });
    stream.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 5 && received.length >= 5 + received.readUInt32BE(1)) finish({ kind: 'response', bytes: received.readUInt32BE(1) });
    });
    stream.on('trailers', (trailers) => finish(statusProbe(trailers)));
    stream.on('close', () => {
      if (answered) return finish({ kind: 'status', code: 13, message: 'the stream ended without a status' });
      // The connection's own error (a TLS alert, say) says more than the stream reset it causes: give it a moment to arrive.
      setTimeout(() => finish(refused(session.closed || session.destroyed ? 'the connection was closed' : `stream reset (code ${stream.rstCode ?? 0})`)), 50);
    });
    // An ADS stream stays open: the request goes out, the stream is not ended.
    stream.write(grpcFrame(discoveryRequest(NODE_ID, LISTENER_TYPE)));
  });
}

function closedHow(useTls: boolean, secured: boolean, socketError: string | undefined, fallback: string): string {
  if (!secured) return socketError ? `${useTls ? 'at the TLS handshake: ' : ''}${socketError}` : fallback;
  if (socketError) return `${useTls ? 'after the TLS handshake: ' : ''}${socketError}`;
  return useTls ? `after the TLS handshake, ${fallback}` : fallback;
}

function statusProbe(headers: http2.IncomingHttpHeaders): AdsProbe {
  const message = headers['grpc-message'];
  return { kind: 'status', code: Number(headers['grpc-status']), message: typeof message === 'string' ? percentDecode(message) : '' };
}

function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** envoy.service.discovery.v3.DiscoveryRequest { node: { id, user_agent_name }, type_url }, hand-encoded. */
function discoveryRequest(nodeId: string, typeUrl: string): Buffer {
  const node = Buffer.concat([field(1, Buffer.from(nodeId)), field(6, Buffer.from('switchyard-verify'))]);
  return Buffer.concat([field(2, node), field(4, Buffer.from(typeUrl))]);
}

/** A length-delimited protobuf field (wire type 2); fields here are < 16 and < 16 KiB. */
function field(number: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(number << 3) | 2]), varint(value.length), value]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

function grpcFrame(message: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}
