/**
 * `switchyard verify`: the expected-behaviour checks against a live target,
 * as a PASS/FAIL report (docs/verify.md). Exit codes: 0 every selected check
 * passed, 1 one failed, 2 bad usage.
 */
import { parseDuration } from '../config/duration.ts';
import type { ExposureTarget } from '../verify/health-exposure.ts';
import { Progress } from '../verify/progress.ts';
import { CHECK_NAMES, formatReport, formatReportJson, type CheckName } from '../verify/report.ts';
import { runVerify, type VerifyOptions } from '../verify/runner.ts';
import { splitHostPort, type RpcSpec, type TargetOptions } from '../verify/target.ts';
import { parseCommandArgs, UsageError } from './usage.ts';

export const VERIFY_USAGE = `usage: switchyard verify [--target HOST:PORT] [--checks spread,health,rollout,xds,gateway] [options]

  Runs expected-behaviour checks against a live deployment and prints PASS/FAIL per check.
  Exits 0 when every selected check passes, 1 when one fails, 2 on bad usage.
  Without --checks: spread (with --target), health (with --backend-health/--admin),
  xds (with --xds), gateway (with --gateway) and rollout (with --rollout-window).

target (spread, rollout):
  --target HOST:PORT        the proxy's serving listener (set expose_upstream: true on it)
  --plaintext               h2c instead of TLS
  --tls-ca FILE             CA for the target's certificate (default: the system's)
  --tls-cert FILE --tls-key FILE   client certificate, if the target asks for one
  --server-name NAME        name to check the certificate against (and the :authority)
  --method /pkg.Svc/Method  required: a unary method every backend implements, safe to call
                            many times (a Ping, a read); see docs/verify.md
  --request-hex HEX         the request message's bytes (default: empty, an empty message)
  --header NAME=VALUE       request metadata (repeatable)
  --timeout D               each RPC's deadline (default 5s)

spread:
  --requests N              RPCs to send over one connection (default 300)
  --concurrency N           of them in flight at once (default 10)
  --expect-backends N       fail if fewer backends answer (default 2)
  --max-ratio R             fail if the busiest backend served more than R × the least busy (default 2)

health:
  --backend-health HOST:PORT   a backend's health port (repeatable): must not be reachable from here
  --admin HOST:PORT            the proxy's admin port (repeatable): must not be reachable from here
  --probe-timeout D            connect/answer timeout per probe (default 2s)

rollout:
  --rollout-window D        drive RPCs this long while you run the rollout (e.g. 60s)
  --rate N                  RPCs started per second (default 20)

xds:
  --xds HOST:PORT           the control plane's ADS port: plaintext and certificate-less TLS must be refused

gateway:
  --gateway NAMESPACE/NAME  a Gateway API Gateway: its status and its routes' must say accepted,
                            programmed and resolved at the current generation (docs/gateway-api.md)
  --kubeconfig FILE         how to reach the API server (default: KUBECONFIG, ~/.kube/config, in-cluster)

output:
  --json                    the report as JSON on stdout (progress stays on stderr)
  --quiet                   no progress on stderr
`;

class HelpRequested extends Error {}

export async function runVerifyCommand(argv: string[]): Promise<number> {
  let options: VerifyOptions;
  let json: boolean;
  let quiet: boolean;
  try {
    ({ options, json, quiet } = parse(argv));
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(VERIFY_USAGE);
      return 0;
    }
    process.stderr.write(`switchyard verify: ${(error as Error).message}\n\n${VERIFY_USAGE}`);
    return 2;
  }
  const report = await runVerify(options, new Progress({ silent: quiet }));
  process.stdout.write(json ? formatReportJson(report) : formatReport(report));
  return report.passed ? 0 : 1;
}

function parse(argv: string[]): { options: VerifyOptions; json: boolean; quiet: boolean } {
  const { values } = parseCommandArgs({
    args: argv,
    allowPositionals: false,
    options: {
      target: { type: 'string' },
      checks: { type: 'string' },
      plaintext: { type: 'boolean', default: false },
      'tls-ca': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'server-name': { type: 'string' },
      method: { type: 'string' },
      'request-hex': { type: 'string', default: '' },
      header: { type: 'string', multiple: true, default: [] },
      timeout: { type: 'string', default: '5s' },
      requests: { type: 'string', default: '300' },
      concurrency: { type: 'string', default: '10' },
      'expect-backends': { type: 'string', default: '2' },
      'max-ratio': { type: 'string', default: '2' },
      'backend-health': { type: 'string', multiple: true, default: [] },
      admin: { type: 'string', multiple: true, default: [] },
      'probe-timeout': { type: 'string', default: '2s' },
      'rollout-window': { type: 'string' },
      rate: { type: 'string', default: '20' },
      xds: { type: 'string' },
      gateway: { type: 'string' },
      kubeconfig: { type: 'string' },
      json: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) throw new HelpRequested();

  const selected = new Set<CheckName>();
  if (values.checks !== undefined) {
    for (const name of values.checks.split(',').map((part) => part.trim()).filter((part) => part !== '')) {
      if (!(CHECK_NAMES as readonly string[]).includes(name)) throw new UsageError(`--checks: unknown check "${name}" (checks: ${CHECK_NAMES.join(', ')})`);
      selected.add(name as CheckName);
    }
    if (selected.size === 0) throw new UsageError('--checks: name at least one check');
  } else {
    if (values.target !== undefined) selected.add('spread');
    if (values['backend-health'].length + values.admin.length > 0) selected.add('health');
    if (values.xds !== undefined) selected.add('xds');
    if (values['rollout-window'] !== undefined) selected.add('rollout');
    if (values.gateway !== undefined) selected.add('gateway');
    if (selected.size === 0) throw new UsageError('nothing to check: give --target, --backend-health/--admin, --xds, --gateway or --rollout-window (or --checks)');
  }

  let target: TargetOptions | undefined;
  let rpc: RpcSpec | undefined;
  if (selected.has('spread') || selected.has('rollout')) {
    if (values.target === undefined) throw new UsageError(`${selected.has('spread') ? 'spread' : 'rollout'} needs --target HOST:PORT`);
    address(values.target, '--target');
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
    if (values.plaintext && (values['tls-ca'] ?? values['tls-cert'] ?? values['server-name']) !== undefined) throw new UsageError('--plaintext and --tls-ca/--tls-cert/--server-name do not go together');
    target = { address: values.target, plaintext: values.plaintext, caFile: values['tls-ca'], certFile: values['tls-cert'], keyFile: values['tls-key'], serverName: values['server-name'] };
    // No default: the health service, the one method most servers have, is often served on a
    // port of its own (Switchyard's kit does), so through the proxy it answers UNIMPLEMENTED.
    if (values.method === undefined) {
      throw new UsageError(`${selected.has('spread') ? 'spread' : 'rollout'} needs --method /package.Service/Method: a unary method every backend implements and that is safe to call many times (a Ping, a read). grpc.health.v1.Health/Check is no default: many servers serve it on a separate port, where the proxy does not send RPCs`);
    }
    if (!/^\/[^/\s]+\/[^/\s]+$/.test(values.method)) throw new UsageError(`--method: expected "/package.Service/Method", got "${values.method}"`);
    const hex = values['request-hex'].replace(/\s+/g, '');
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new UsageError('--request-hex: expected an even number of hex digits');
    const metadata = values.header.map((header): [string, string] => {
      const at = header.indexOf('=');
      if (at <= 0) throw new UsageError(`--header: expected NAME=VALUE, got "${header}"`);
      return [header.slice(0, at).trim().toLowerCase(), header.slice(at + 1)];
    });
    rpc = { method: values.method, request: Buffer.from(hex, 'hex'), metadata, timeoutMs: duration(values.timeout, '--timeout') };
  }

  const options: { -readonly [K in keyof VerifyOptions]: VerifyOptions[K] } = {};
  if (selected.has('spread')) {
    options.spread = {
      target: target!,
      rpc: rpc!,
      requests: integer(values.requests, '--requests', 1, 1_000_000),
      concurrency: integer(values.concurrency, '--concurrency', 1, 1_000),
      expectBackends: integer(values['expect-backends'], '--expect-backends', 1, 100_000),
      maxRatio: number(values['max-ratio'], '--max-ratio', 1),
    };
  }
  if (selected.has('health')) {
    const targets: ExposureTarget[] = [
      ...values['backend-health'].map((text) => ({ address: text, ...address(text, '--backend-health'), kind: 'backend health' })),
      ...values.admin.map((text) => ({ address: text, ...address(text, '--admin'), kind: 'admin' })),
    ];
    if (targets.length === 0) throw new UsageError('health needs --backend-health HOST:PORT and/or --admin HOST:PORT');
    options.health = { targets, timeoutMs: duration(values['probe-timeout'], '--probe-timeout') };
  }
  if (selected.has('xds')) {
    if (values.xds === undefined) throw new UsageError('xds needs --xds HOST:PORT (the control plane\'s ADS port)');
    options.xds = { address: values.xds, ...address(values.xds, '--xds'), timeoutMs: duration(values['probe-timeout'], '--probe-timeout') };
  }
  if (selected.has('gateway')) {
    const match = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(values.gateway ?? '');
    if (!match) throw new UsageError(`gateway needs --gateway NAMESPACE/NAME${values.gateway === undefined ? '' : `, got "${values.gateway}"`}`);
    options.gateway = { namespace: match[1]!, name: match[3]!, kubeconfig: values.kubeconfig };
  }
  if (selected.has('rollout')) {
    if (values['rollout-window'] === undefined) throw new UsageError('rollout needs --rollout-window D (e.g. 60s)');
    options.rollout = {
      target: target!,
      rpc: rpc!,
      windowMs: duration(values['rollout-window'], '--rollout-window'),
      rate: number(values.rate, '--rate', 0.1, 10_000),
    };
  }
  return { options, json: values.json, quiet: values.quiet };
}

function address(text: string, flag: string): { host: string; port: number } {
  const parsed = splitHostPort(text);
  if (!parsed) throw new UsageError(`${flag}: expected HOST:PORT ([IPv6]:PORT), got "${text}"`);
  return parsed;
}

function duration(text: string, flag: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`${flag}: expected a duration such as 2s or 500ms, got "${text}"`);
  return ms;
}

function integer(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`${flag}: expected a whole number from ${min} to ${max}, got "${text}"`);
  return value;
}

function number(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) throw new UsageError(`${flag}: expected a number of at least ${min}, got "${text}"`);
  return value;
}
