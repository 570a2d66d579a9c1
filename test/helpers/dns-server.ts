/**
 * A tiny authoritative DNS server for tests: A and AAAA records from a mutable
 * in-memory table, served over UDP and TCP on 127.0.0.1 (one OS-chosen port
 * for both). Answers carry TTL 0 so no resolver cache hides a change.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';

export interface DnsRecords {
  readonly a?: readonly string[];
  readonly aaaa?: readonly string[];
}

/**
 * `servfail`: answer SERVFAIL. `refused`: answer REFUSED. `drop`: never
 * answer (the client times out). `null`: serve normally.
 */
export type DnsFailure = 'servfail' | 'refused' | 'drop' | null;

export interface TestDnsServer {
  /** `127.0.0.1:PORT`, ready for a `dns.servers` entry. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Questions received so far (A and AAAA count separately; dropped ones count too). */
  readonly queryCount: number;
  /** Create or replace a name. A name with no records of a type answers NOERROR with no data. */
  setRecords(name: string, records: DnsRecords): void;
  /** Forget a name: it answers NXDOMAIN again. */
  deleteRecords(name: string): void;
  /** Fail every query, or only those for one record type (to fail a single family). */
  setFailure(failure: DnsFailure, onlyType?: 'A' | 'AAAA'): void;
  close(): Promise<void>;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
const RECURSION_DESIRED = 1 << 8;

/** DNS names compare case-insensitively and a trailing dot is the root. */
function canonical(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

export async function startDnsServer(options: { tcp?: boolean } = {}): Promise<TestDnsServer> {
  const tcp = options.tcp ?? true;
  const table = new Map<string, { a: string[]; aaaa: string[] }>();
  let failure: DnsFailure = null;
  let failureType: 'A' | 'AAAA' | undefined;
  let queryCount = 0;

  /** Build the response to one query, or undefined to stay silent. */
  function respond(query: DecodedPacket): Packet | undefined {
    const questions = query.questions ?? [];
    queryCount += Math.max(1, questions.length);
    const question = questions[0];
    const failing = failureType === undefined || question?.type === failureType ? failure : null;
    if (failing === 'drop') return undefined;
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & RECURSION_DESIRED);
    const reply = (rcode: number, answers: Answer[] = []): Packet =>
      ({ type: 'response', id: query.id ?? 0, flags: flags | rcode, questions, answers });
    if (failing === 'servfail') return reply(RCODE.SERVFAIL);
    if (failing === 'refused') return reply(RCODE.REFUSED);
    if (!question) return reply(RCODE.NOERROR);
    const entry = table.get(canonical(question.name));
    if (!entry) return reply(RCODE.NXDOMAIN);
    const data = question.type === 'A' ? entry.a : question.type === 'AAAA' ? entry.aaaa : [];
    const type = question.type === 'AAAA' ? 'AAAA' : 'A';
    return reply(RCODE.NOERROR, data.map((address) => ({ type, class: 'IN', name: question.name, ttl: 0, data: address })));
  }

  const udp = createSocket('udp4');
  udp.on('message', (message: Buffer, peer: RemoteInfo) => {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return; // garbage is not worth a FORMERR in a test server
    }
    const response = respond(query);
    if (response) udp.send(dnsPacket.encode(response), peer.port, peer.address);
  });
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  const port = udp.address().port;

  let tcpServer: Server | undefined;
  const connections = new Set<Socket>();
  if (tcp) {
    tcpServer = createServer((socket) => {
      connections.add(socket);
      socket.on('close', () => connections.delete(socket));
      socket.on('error', () => socket.destroy());
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        // TCP DNS messages are prefixed with a two-byte length.
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const length = buffered.readUInt16BE(0);
          const message = buffered.subarray(2, 2 + length);
          buffered = buffered.subarray(2 + length);
          let query: DecodedPacket;
          try {
            query = dnsPacket.decode(message);
          } catch {
            socket.destroy();
            return;
          }
          const response = respond(query);
          if (response) socket.write(dnsPacket.streamEncode(response));
        }
      });
    });
    // The UDP port was free on UDP only; if TCP has it taken, serve UDP alone
    // rather than failing the test (c-ares only uses TCP for truncated answers).
    tcpServer.listen(port, '127.0.0.1');
    try {
      await once(tcpServer, 'listening');
    } catch {
      tcpServer = undefined;
    }
  }

  return {
    address: `127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    get queryCount() {
      return queryCount;
    },
    setRecords(name, records) {
      table.set(canonical(name), { a: [...(records.a ?? [])], aaaa: [...(records.aaaa ?? [])] });
    },
    deleteRecords(name) {
      table.delete(canonical(name));
    },
    setFailure(next, onlyType) {
      failure = next;
      failureType = onlyType;
    },
    async close() {
      const closing: Promise<unknown>[] = [new Promise<void>((resolve) => udp.close(() => resolve()))];
      if (tcpServer) {
        for (const socket of connections) socket.destroy();
        closing.push(new Promise<void>((resolve) => tcpServer!.close(() => resolve())));
      }
      await Promise.all(closing);
    },
  };
}
