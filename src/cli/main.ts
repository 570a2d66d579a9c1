#!/usr/bin/env node
/**
 * The `switchyard` command.
 *   switchyard run --config FILE     run the proxy (the default command)
 *   switchyard check --config FILE   validate a config and exit
 *   switchyard demo                  the proxy in front of three demo backends, L4 vs L7 side by side
 *   switchyard status                the endpoints a running proxy sees, from its admin interface
 *   switchyard control-plane --config FILE   the xDS control plane (control-plane.ts)
 *   switchyard agent …               the node-local xDS relay for proxyless gRPC clients (agent.ts)
 *   switchyard bootstrap …           a proxyless gRPC client's xDS bootstrap file (bootstrap.ts)
 *   switchyard verify …              expected-behaviour checks against a live deployment (verify.ts)
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../config/duration.ts';
import { VERSION } from '../version.ts';
import { DEFAULT_ADMIN, printStatus } from './status.ts';


const USAGE = `usage: switchyard [run] --config FILE
       switchyard check --config FILE
       switchyard demo [--duration 30s]
       switchyard status [--admin HOST:PORT] [--json]
       switchyard control-plane --config FILE
       switchyard agent --control-plane HOST:PORT --ca FILE --cert FILE --key FILE
                        [--server-name NAME] (--listen 127.0.0.1:PORT | --socket PATH)
       switchyard bootstrap --node-id ID [--node-cluster C] [--zone Z]
                            (--agent 127.0.0.1:PORT | --socket PATH) [--output FILE]
       switchyard verify [--target HOST:PORT] [--checks spread,health,rollout,xds] …
       switchyard --version

options:
  -c, --config FILE    the YAML config (docs/configuration.md)
      --duration D     demo only: stop after D (e.g. 30s); default: run until Ctrl-C
      --workers N      run N proxy processes sharing the listeners (default 1; use up to one per core)
      --admin HOST:PORT   status only: the proxy's admin interface (default ${DEFAULT_ADMIN})
      --json           status only: print /clusters as JSON instead of a table
  agent, bootstrap, verify   their options: switchyard agent --help (bootstrap, verify likewise)

signals (run):
  SIGTERM, SIGINT      drain: /ready answers 503, serve on for drain.delay, GOAWAY every
                       connection, let in-flight RPCs finish within drain.timeout, exit 0
  SIGHUP               reload the config file; a bad one is logged and the running one stays
`;

/** Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config. */
async function main(argv: string[]): Promise<number> {
  // agent and bootstrap take options of their own, and load only what they need: the agent runs on every node.
  if (argv[0] === 'agent') return (await import('./agent.ts')).runAgentCommand(argv.slice(1));
  if (argv[0] === 'bootstrap') return (await import('./bootstrap.ts')).runBootstrapCommand(argv.slice(1));
  if (argv[0] === 'verify') return (await import('./verify.ts')).runVerifyCommand(argv.slice(1));
  if (argv.some((arg) => arg === '--drain-timeout' || arg.startsWith('--drain-timeout='))) {
    return usageError('--drain-timeout is gone: set drain.timeout (and drain.delay) in the config instead');
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      duration: { type: 'string' },
      workers: { type: 'string', default: '1' },
      admin: { type: 'string', default: DEFAULT_ADMIN },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`switchyard ${VERSION} (node ${process.versions.node}, nghttp2 ${process.versions.nghttp2})\n`);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  switch (command) {
    case 'demo': {
      const durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
      if (values.duration !== undefined && durationMs === undefined) return usageError(`--duration: expected a duration such as 30s, got "${values.duration}"`);
      // Loaded only for the demo: the proxy itself needs no gRPC library, and it costs memory.
      const { runDemo } = await import('../demo/demo.ts');
      await runDemo({ durationMs });
      return 0;
    }
    case 'control-plane': {
      if (!values.config) return usageError('control-plane needs --config FILE');
      const { runControlPlane } = await import('./control-plane.ts');
      return runControlPlane(values.config);
    }
    case 'status':
      return printStatus(values.admin, { json: values.json });
    case 'check':
    case 'run': {
      if (!values.config) return usageError(`${command} needs --config FILE`);
      const workers = Number(values.workers);
      if (!Number.isInteger(workers) || workers < 1 || workers > 256) return usageError(`--workers: expected a whole number from 1 to 256, got "${values.workers}"`);
      // Loaded here, not at the top: the agent (same command, run on every node) must not pay for the proxy's modules.
      if (command === 'check') {
        const loaded = await (await import('../config/load.ts')).loadConfig(values.config);
        process.stdout.write(`${values.config}: ok (${loaded.config.listeners.length} listener(s), ${loaded.config.routes.length} route(s), ${loaded.config.clusters.length} cluster(s))\n`);
        return 0;
      }
      // Validated in a child process: the proxy never loads zod and yaml (see src/config/isolated-load.ts).
      const [{ loadConfigIsolated }, { runProxy }, { isWorkerProcess, runWorkers }] = await Promise.all([import('../config/isolated-load.ts'), import('./run.ts'), import('./workers.ts')]);
      const loaded = await loadConfigIsolated(values.config);
      // The config was loaded and checked above, so a bad one fails once, here, not in every worker.
      if (workers > 1 && !isWorkerProcess()) return runWorkers(workers, loaded.config.drain);
      return runProxy(values.config, loaded);
    }
    default:
      return usageError(`unknown command "${command}"`);
  }
}

function usageError(message: string): number {
  process.stderr.write(`switchyard: ${message}\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof Error && error.name === 'ConfigError') {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    const err = error as NodeJS.ErrnoException;
    process.stderr.write(`switchyard: ${err.code ? `${err.code}: ` : ''}${err.message ?? String(error)}\n`);
    process.exit(1);
  },
);
