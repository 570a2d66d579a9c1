/**
 * `switchyard bootstrap`: the xDS bootstrap file of a proxyless gRPC client
 * (@grpc/grpc-js-xds reads it from the file named by GRPC_XDS_BOOTSTRAP),
 * pointing at the node's `switchyard agent`. grpc-js-xds accepts only
 * `insecure` and `google_default` channel credentials, which is why it talks
 * to the agent (on loopback or a Unix socket) and the agent to the control
 * plane (over mTLS).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { isLoopback } from '../xds/agent/loopback.ts';
import { parseCommandArgs, UsageError } from './usage.ts';

export const BOOTSTRAP_USAGE = `usage: switchyard bootstrap --node-id ID [--node-cluster CLUSTER] [--zone ZONE]
                            (--agent 127.0.0.1:PORT | --socket PATH) [--output FILE]

  Writes the xDS bootstrap JSON for a proxyless gRPC client that reaches the control
  plane through \`switchyard agent\`; point GRPC_XDS_BOOTSTRAP at the file.

  --node-id ID           node.id: the name the control plane knows this client by
  --node-cluster NAME    node.cluster
  --zone ZONE            node.locality.zone: the zone the client runs in
  --agent ADDRESS:PORT   the agent's loopback address (its --listen)
  --socket PATH          or its Unix socket (its --socket)
  --output FILE          write the file here (default: standard output)
`;

export interface BootstrapOptions {
  readonly nodeId: string;
  readonly nodeCluster?: string | undefined;
  readonly zone?: string | undefined;
  /** The agent: `host:port` on loopback, or a Unix socket path. */
  readonly agent: { readonly address: string } | { readonly socketPath: string };
}

export interface XdsBootstrap {
  readonly xds_servers: readonly {
    readonly server_uri: string;
    readonly channel_creds: readonly { readonly type: 'insecure' }[];
    readonly server_features: readonly string[];
  }[];
  readonly node: { readonly id: string; readonly cluster?: string; readonly locality: { readonly zone?: string } };
}

/**
 * The bootstrap object. A socket becomes `unix:///absolute/path` (the form
 * grpc-js resolves: an empty authority, then the path). grpc-js-xds requires
 * node.locality, so it is always there, empty without a zone.
 */
export function bootstrapFor(options: BootstrapOptions): XdsBootstrap {
  const serverUri = 'socketPath' in options.agent ? `unix://${path.resolve(options.agent.socketPath)}` : options.agent.address;
  return {
    xds_servers: [{ server_uri: serverUri, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: options.nodeId,
      ...(options.nodeCluster !== undefined && { cluster: options.nodeCluster }),
      locality: options.zone !== undefined ? { zone: options.zone } : {},
    },
  };
}


function parse(argv: string[]): { options: BootstrapOptions; output: string | undefined } {
  const { values } = parseCommandArgs({
    args: argv,
    allowPositionals: false,
    options: {
      'node-id': { type: 'string' },
      'node-cluster': { type: 'string' },
      zone: { type: 'string' },
      agent: { type: 'string' },
      socket: { type: 'string' },
      output: { type: 'string', short: 'o' },
    },
  });
  if (!values['node-id']) throw new UsageError('bootstrap needs --node-id ID');
  if ((values.agent === undefined) === (values.socket === undefined)) throw new UsageError('bootstrap needs exactly one of --agent 127.0.0.1:PORT and --socket PATH');
  let agent: BootstrapOptions['agent'];
  if (values.socket !== undefined) {
    if (values.socket === '') throw new UsageError('--socket: expected a path');
    agent = { socketPath: values.socket };
  } else {
    const match = /^(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(values.agent!);
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 65_535) throw new UsageError(`--agent: expected ADDRESS:PORT (e.g. 127.0.0.1:18000), got "${values.agent}"`);
    const host = match[1]!.replace(/^\[(.*)\]$/, '$1');
    // The agent listens on loopback only: it speaks plaintext.
    if (!isLoopback(host)) throw new UsageError(`--agent: ${host} is not a loopback address: the client talks plaintext to its node's agent, on 127.0.0.1, ::1 or a Unix socket`);
    agent = { address: values.agent! };
  }
  return { options: { nodeId: values['node-id'], nodeCluster: values['node-cluster'], zone: values.zone, agent }, output: values.output };
}

/** Writes the bootstrap; resolves with the exit code. */
export async function runBootstrapCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(BOOTSTRAP_USAGE);
    return 0;
  }
  let parsed;
  try {
    parsed = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`switchyard bootstrap: ${error.message}\n\n${BOOTSTRAP_USAGE}`);
    return 2;
  }
  const json = `${JSON.stringify(bootstrapFor(parsed.options), null, 2)}\n`;
  if (parsed.output === undefined) {
    process.stdout.write(json);
  } else {
    writeFileSync(parsed.output, json);
  }
  return 0;
}
