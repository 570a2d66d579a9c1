/**
 * `switchyard agent`: the node-local xDS relay for proxyless gRPC clients
 * (src/xds/agent/). Runs until SIGTERM or SIGINT, then exits 0.
 *
 * This module and what it imports stay small on purpose: the agent runs on
 * every node, and its memory is the point of it.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { AgentConfigError, isLoopback, startAgent, type AgentOptions } from '../xds/agent/agent.ts';
import { parseCommandArgs, UsageError } from './usage.ts';

export const AGENT_USAGE = `usage: switchyard agent --control-plane HOST:PORT --ca FILE --cert FILE --key FILE
                        [--server-name NAME] (--listen 127.0.0.1:PORT | --socket PATH)
                        [--socket-mode 0660] [--max-local-streams N] [--max-request-bytes N]

  Relays the ADS streams of local proxyless gRPC clients (@grpc/grpc-js-xds) to the
  control plane over mTLS, and serves them its cached answers while it is unreachable.

  --control-plane HOST:PORT  the control plane's xDS address
  --ca FILE                  PEM: the CA that signed the control plane's certificate
  --cert FILE, --key FILE    PEM: the agent's client certificate and its key
  --server-name NAME         verify the control plane's certificate for NAME instead of HOST
  --listen ADDRESS:PORT      where local clients connect: a loopback address only
  --socket PATH              or a Unix socket
  --socket-mode MODE         the socket's permissions (default 0666: apps running as any user may connect)
  --max-local-streams N      local ADS streams at once (default 1000)
  --max-request-bytes N      the largest request a local client may send (default 1048576)
`;

/** Parses `switchyard agent`'s arguments into startAgent's options (logger aside). Throws UsageError. */
export function parseAgentArgs(argv: string[]): Omit<AgentOptions, 'logger'> {
  const { values } = parseCommandArgs({
    args: argv,
    allowPositionals: false,
    options: {
      'control-plane': { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      'server-name': { type: 'string' },
      listen: { type: 'string' },
      socket: { type: 'string' },
      'socket-mode': { type: 'string' },
      'max-local-streams': { type: 'string' },
      'max-request-bytes': { type: 'string' },
    },
  });
  const target = values['control-plane'];
  if (!target) throw new UsageError('agent needs --control-plane HOST:PORT');
  if (!/^.+:\d+$/.test(target)) throw new UsageError(`--control-plane: expected HOST:PORT, got "${target}"`);
  for (const flag of ['ca', 'cert', 'key'] as const) if (!values[flag]) throw new UsageError(`agent needs --${flag} FILE`);
  if ((values.listen === undefined) === (values.socket === undefined)) throw new UsageError('agent needs exactly one of --listen 127.0.0.1:PORT and --socket PATH');

  let listen: AgentOptions['listen'];
  if (values.socket !== undefined) {
    if (values.socket === '') throw new UsageError('--socket: expected a path');
    listen = { socketPath: values.socket };
  } else {
    if (values['socket-mode'] !== undefined) throw new UsageError('--socket-mode goes with --socket');
    const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(values.listen!);
    if (!match) throw new UsageError(`--listen: expected ADDRESS:PORT (e.g. 127.0.0.1:18000), got "${values.listen}"`);
    const address = match[1]!.replace(/^\[(.*)\]$/, '$1');
    if (!isLoopback(address)) {
      throw new UsageError(`--listen: refusing ${address}: local clients speak plaintext xDS to the agent, so it listens on a loopback address (127.0.0.1, ::1) or a Unix socket (--socket) only`);
    }
    const port = Number(match[2]);
    if (port > 65_535) throw new UsageError(`--listen: port ${port} is out of range`);
    listen = { address, port };
  }
  let socketMode: number | undefined;
  if (values['socket-mode'] !== undefined) {
    if (!/^0?[0-7]{3}$/.test(values['socket-mode'])) throw new UsageError(`--socket-mode: expected octal permissions such as 0660, got "${values['socket-mode']}"`);
    socketMode = Number.parseInt(values['socket-mode'], 8);
  }
  return {
    listen,
    ...(socketMode !== undefined && { socketMode }),
    controlPlane: {
      target,
      ca: readPem(values.ca!, '--ca'),
      cert: readPem(values.cert!, '--cert'),
      key: readPem(values.key!, '--key'),
      serverName: values['server-name'],
    },
    maxLocalStreams: positiveInteger(values['max-local-streams'], '--max-local-streams'),
    maxRequestBytes: positiveInteger(values['max-request-bytes'], '--max-request-bytes'),
  };
}

function readPem(file: string, flag: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (error) {
    throw new UsageError(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!pem.includes('-----BEGIN ')) throw new UsageError(`${flag} ${file}: not a PEM file`);
  return pem;
}

function positiveInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new UsageError(`${flag}: expected a whole number above 0, got "${value}"`);
  return number;
}

/** Runs the agent until SIGTERM or SIGINT; resolves with the exit code. */
export async function runAgentCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  let options: Omit<AgentOptions, 'logger'>;
  try {
    options = parseAgentArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`switchyard agent: ${error.message}\n\n${AGENT_USAGE}`);
    return 2;
  }
  const logger = pino({ name: 'switchyard-agent' });
  let agent;
  try {
    agent = await startAgent({ ...options, logger });
  } catch (error) {
    if (!(error instanceof AgentConfigError)) throw error;
    process.stderr.write(`switchyard ${error.message}\n`);
    return 2;
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  logger.info({ signal }, 'agent stopping');
  await agent.close();
  return 0;
}
