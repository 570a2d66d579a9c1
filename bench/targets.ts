/**
 * The things the bench sends load to, each in front of the same backends:
 * one backend directly, Switchyard (dist/bin/switchyard.js run, the bundled command), HAProxy and nginx.
 * Each start function returns a Target: where to send load (port) and which
 * process tree to measure (pid); stop() kills that tree.
 *
 * Config files go into the run's temp dir; every listener binds a port that
 * the OS just handed out (haproxy and nginx need concrete ports).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backends.ts';
import { nofileHardLimit } from './metrics.ts';
import { runToEnd, spawnChild, startWithRetry } from './proc.ts';

export interface Target {
  /** direct, switchyard, haproxy, nginx, or e.g. switchyard/peak_ewma. */
  readonly name: string;
  readonly port: number;
  /** Root of the process tree whose CPU and memory are measured. */
  readonly pid: number;
  /** Serves TLS (h2load then speaks https). */
  readonly tls?: boolean;
  stop(): Promise<void>;
}

/** A certificate and key (PEM files) for the TLS round; `combined` is both in one file, as HAProxy wants. */
export interface BenchCertificate {
  readonly cert: string;
  readonly key: string;
  readonly combined: string;
}

// The built command, as `npx switchyard` runs it (npm run bench builds it first): no type stripping at run time.
const CLI = fileURLToPath(new URL('../dist/bin/switchyard.js', import.meta.url));

/** The first backend itself: the baseline every proxy adds to. Its pid is the backend's, so "CPU" is the backend's own. */
export function directTarget(backend: Backend): Target {
  return { name: 'direct', port: backend.port, pid: backend.child.pid, stop: async () => {} };
}

export interface SwitchyardOptions {
  readonly name?: string;
  readonly policy?: string;
  readonly workers?: number;
  /** Clusters, each over all backends, routed by prefix (the idle-memory run uses 3). */
  readonly clusters?: number;
  /** Another build's command, e.g. its dist/bin/switchyard.js (the baseline a change is compared with); default this checkout's. */
  readonly cli?: string;
  /** Serve TLS 1.3 with this certificate instead of h2c. */
  readonly tls?: BenchCertificate;
  /** Turn the admin interface on at this port (its /metrics: allocation and GC figures). */
  readonly adminPort?: number;
}

/** One `switchyard run` process (or a primary and workers with options.workers). */
export function startSwitchyard(backends: readonly Backend[], dir: string, options: SwitchyardOptions = {}): Promise<Target> {
  const name = options.name ?? 'switchyard';
  const policy = options.policy ?? 'round_robin';
  const clusterCount = options.clusters ?? 1;
  const workDir = path.join(dir, name.replace(/\W/g, '_'));
  mkdirSync(workDir, { recursive: true });
  const endpoints = backends.map((b) => `{ address: 127.0.0.1, port: ${b.port} }`).join(', ');
  return startWithRetry(name, async (port) => {
    const clusters = Array.from({ length: clusterCount }, (_, i) => `  - { name: c${i}, lb_policy: ${policy}, endpoints: [${endpoints}] }`);
    // Extra clusters get their own prefix; the last route takes everything else to c0.
    const routes = Array.from({ length: clusterCount - 1 }, (_, i) => `  - { match: { prefix: /c${i + 1}. }, cluster: c${i + 1} }`);
    const listener = options.tls ? `tls: { cert_file: ${options.tls.cert}, key_file: ${options.tls.key} }` : 'plaintext: true';
    const config = [
      `listeners: [{ name: bench, address: 127.0.0.1, port: ${port}, ${listener} }]`,
      ...(options.adminPort === undefined ? [] : [`admin: { port: ${options.adminPort} }`]),
      'clusters:', ...clusters,
      'routes:', ...routes, '  - { match: { prefix: / }, cluster: c0 }',
      // warn: the 'listening' line is not needed (we poll the port), and nothing per-RPC is logged.
      'log_level: warn',
      // Stop at once on SIGTERM: no drain delay, and in-flight RPCs get 1 s.
      'drain: { delay: 1ms, timeout: 1s }', '',
    ].join('\n');
    const file = path.join(workDir, 'switchyard.yaml');
    writeFileSync(file, config);
    const args = [options.cli ?? CLI, 'run', '--config', file, ...(options.workers ? ['--workers', String(options.workers)] : [])];
    const child = spawnChild(name, process.execPath, args, { raiseNofile: true });
    return { child, value: { name, port, pid: child.pid, tls: options.tls !== undefined, stop: () => child.stop() } };
  });
}

/** Whether `switchyard run` knows --workers (it is being added concurrently): its --help mentions it. */
export async function switchyardHasWorkers(): Promise<boolean> {
  const result = await runToEnd('switchyard --help', process.execPath, [CLI, 'run', '--help']);
  return result.code === 0 && /--workers\b/.test(result.stdout + result.stderr);
}

/**
 * HAProxy, one thread, h2 to the backends, round robin. The per-connection
 * stream limit is raised from its default of 100 so that the streaming test
 * (100 streams per connection) is not capped by it.
 */
export function startHaproxy(haproxy: string, backends: readonly Backend[], dir: string, tls?: BenchCertificate): Promise<Target> {
  const name = tls ? 'haproxy-tls' : 'haproxy';
  const workDir = path.join(dir, name);
  mkdirSync(workDir, { recursive: true });
  return startWithRetry(name, async (port) => {
    const config = [
      'global',
      ...(tls ? ['  ssl-default-bind-options ssl-min-ver TLSv1.3'] : []),
      '  nbthread 1',
      '  maxconn 8000', // the FD limit is 20000 on the reference machine; haproxy needs ~2 FDs per connection
      '  tune.h2.max-concurrent-streams 1000',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend fe',
      tls ? `  bind 127.0.0.1:${port} ssl crt ${tls.combined} alpn h2` : `  bind 127.0.0.1:${port} proto h2`,
      '  default_backend be',
      'backend be',
      '  balance roundrobin',
      ...backends.map((b, i) => `  server s${i} 127.0.0.1:${b.port} proto h2`),
      '',
    ].join('\n');
    const file = path.join(workDir, 'haproxy.cfg');
    writeFileSync(file, config);
    // -db: stay in the foreground, so the process we started is haproxy itself.
    const child = spawnChild(name, haproxy, ['-db', '-f', file], { raiseNofile: true });
    return { child, value: { name, port, pid: child.pid, tls: tls !== undefined, stop: () => child.stop() } };
  });
}

/**
 * nginx, one worker, grpc_pass to an upstream with keepalive. Everything it
 * writes (pid, logs, temp files) stays in its own temp dir. Raised from the
 * defaults, and why: keepalive_requests (clients and upstream; the default
 * 1000 would make nginx send GOAWAY to h2load's connections every 1000
 * RPCs, which h2load reports as failures); http2_max_concurrent_streams
 * (default 128; the streaming test uses 100 per connection, so 1000 leaves
 * headroom); worker_connections (default 512; grpc_pass opens one upstream
 * connection per in-flight RPC, so 1000 streams need 1000+ of them).
 */
export function startNginx(nginx: string, backends: readonly Backend[], dir: string): Promise<Target> {
  const workDir = path.join(dir, 'nginx');
  mkdirSync(workDir, { recursive: true });
  const limit = Math.min(65536, nofileHardLimit());
  return startWithRetry('nginx', async (port) => {
    const p = (name: string) => path.join(workDir, name);
    const config = [
      'daemon off;',
      'master_process on;',
      'worker_processes 1;',
      // As root, nginx would switch workers to "nobody", who cannot write into our 0700 temp dir.
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      `worker_rlimit_nofile ${limit};`,
      `error_log ${p('error.log')} warn;`,
      `pid ${p('nginx.pid')};`,
      `events { worker_connections ${Math.floor(limit / 2) - 100}; }`,
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${p('client_body')};`,
      `  proxy_temp_path ${p('proxy')};`,
      `  fastcgi_temp_path ${p('fastcgi')};`,
      `  uwsgi_temp_path ${p('uwsgi')};`,
      `  scgi_temp_path ${p('scgi')};`,
      '  keepalive_requests 1000000;',
      '  http2_max_concurrent_streams 1000;',
      '  upstream be {',
      ...backends.map((b) => `    server 127.0.0.1:${b.port};`),
      '    keepalive 64;',
      '    keepalive_requests 1000000;',
      '  }',
      '  server {',
      `    listen 127.0.0.1:${port} http2;`,
      '    location / { grpc_pass grpc://be; }',
      '  }',
      '}',
      '',
    ].join('\n');
    writeFileSync(p('nginx.conf'), config);
    // -e: the error log to use before the config is read (else /var/log/nginx, which may not be writable).
    const child = spawnChild('nginx', nginx, ['-c', p('nginx.conf'), '-p', workDir, '-e', p('error.log')], { raiseNofile: true });
    return { child, value: { name: 'nginx', port, pid: child.pid, stop: () => child.stop() } };
  });
}
