import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { healthCheck } from '../../src/config/resilience-schema.ts';
import { ActiveHealthChecker, type HealthState } from '../../src/health/active-checker.ts';
import { ServingStatus } from '../../src/health/grpc-health-probe.ts';
import { EndpointPool } from '../../src/upstream/endpoint-pool.ts';
import { waitFor } from '../helpers/harness.ts';
import { closedPort } from '../helpers/ports.ts';

/** A real grpc-js server with the standard health service; statuses per service name, or `hang` to never answer. */
interface HealthServer {
  readonly port: number;
  readonly statuses: Map<string, number>;
  checks: number;
  hang: boolean;
  close(): void;
}

async function startHealthServer(initial: number = ServingStatus.SERVING): Promise<HealthServer> {
  const server = new grpc.Server();
  const state: HealthServer = { port: 0, statuses: new Map([['', initial]]), checks: 0, hang: false, close: () => server.forceShutdown() };
  server.addService(healthService as unknown as grpc.ServiceDefinition, {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, { status: number }>, callback: grpc.sendUnaryData<{ status: number }>) => {
      state.checks++;
      if (state.hang) return;
      const status = state.statuses.get(call.request.service);
      if (status === undefined) return callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
      callback(null, { status });
    },
    Watch: () => {},
    List: () => {},
  });
  (state as { port: number }).port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))));
  return state;
}


const INTERVAL_MS = 150;

interface Transition { key: string; state: HealthState; previous: HealthState }

/** A checker over endpoints on 127.0.0.1, recording its transitions. */
function checker(config: Record<string, unknown> = {}) {
  const transitions: Transition[] = [];
  const pools: EndpointPool[] = [];
  const health = new ActiveHealthChecker({
    cluster: 'test',
    config: healthCheck.parse({ interval: `${INTERVAL_MS}ms`, interval_jitter: '1ms', timeout: '120ms', unhealthy_threshold: 2, healthy_threshold: 2, ...config }),
    connectTimeoutMs: 1_000,
    onChange: (key, state, previous) => transitions.push({ key, state, previous }),
  });
  const endpoint = (port: number) => {
    const pool = new EndpointPool({ host: '127.0.0.1', port, connectTimeoutMs: 1_000 });
    pools.push(pool);
    return { key: `127.0.0.1:${port}`, address: { host: '127.0.0.1' }, pool };
  };
  const close = () => {
    health.close();
    for (const pool of pools) pool.close();
  };
  return { health, transitions, endpoint, close };
}

describe('active health checks against real grpc-js health services', () => {
  let server: HealthServer;

  before(async () => {
    server = await startHealthServer();
  });

  after(() => server.close());

  it('a new endpoint starts unknown, is checked at once over its own pool, and is healthy after one SERVING answer', async () => {
    // A long interval: healthy well before it means the first check was not waiting for it.
    const { health, transitions, endpoint, close } = checker({ interval: '20s', timeout: '5s' });
    try {
      const target = endpoint(server.port);
      health.setEndpoints([target]);
      assert.equal(health.state(target.key), 'unknown');
      await waitFor(() => health.state(target.key) === 'healthy', 'the first check to pass', 5_000);
      assert.deepEqual(transitions.map((t) => [t.previous, t.state]), [['unknown', 'healthy']]);
      // The check went over the connection RPCs use.
      assert.equal(target.pool.connectionCount, 1);
    } finally {
      close();
    }
  });

  it('NOT_SERVING: unhealthy after unhealthy_threshold checks; SERVING again: healthy after healthy_threshold', async () => {
    const { health, transitions, endpoint, close } = checker({ unhealthy_threshold: 3, healthy_threshold: 2 });
    try {
      const target = endpoint(server.port);
      health.setEndpoints([target]);
      await waitFor(() => health.state(target.key) === 'healthy', 'healthy');

      const flipped = performance.now();
      server.statuses.set('', ServingStatus.NOT_SERVING);
      await waitFor(() => health.state(target.key) === 'unhealthy', 'unhealthy');
      const down = performance.now() - flipped;
      // Three failed checks: at least two full intervals after the flip, at most three (plus jitter and slack).
      assert.ok(down >= 2 * INTERVAL_MS && down <= 3 * INTERVAL_MS + 250, `unhealthy after ${Math.round(down)} ms`);
      assert.equal(health.snapshot(target.key)!.lastFailure, 'NOT_SERVING');
      assert.equal(health.snapshot(target.key)!.consecutiveFailures, 3);

      const restored = performance.now();
      server.statuses.set('', ServingStatus.SERVING);
      await waitFor(() => health.state(target.key) === 'healthy', 'healthy again');
      const up = performance.now() - restored;
      assert.ok(up >= INTERVAL_MS && up <= 2 * INTERVAL_MS + 250, `healthy after ${Math.round(up)} ms`);
      assert.deepEqual(transitions.map((t) => t.state), ['healthy', 'unhealthy', 'healthy']);
    } finally {
      server.statuses.set('', ServingStatus.SERVING);
      close();
    }
  });

  it('asks about the configured service: SERVICE_UNKNOWN and a NOT_FOUND error both fail', async () => {
    server.statuses.set('shop.v1.Orders', ServingStatus.SERVICE_UNKNOWN);
    const known = checker({ service: 'shop.v1.Orders' });
    const unknown = checker({ service: 'shop.v1.Nothing' });
    try {
      const a = known.endpoint(server.port);
      const b = unknown.endpoint(server.port);
      known.health.setEndpoints([a]);
      unknown.health.setEndpoints([b]);
      await waitFor(() => known.health.state(a.key) === 'unhealthy' && unknown.health.state(b.key) === 'unhealthy', 'both unhealthy');
      assert.equal(known.health.snapshot(a.key)!.lastFailure, 'SERVICE_UNKNOWN');
      assert.equal(unknown.health.snapshot(b.key)!.lastFailure, 'grpc-status NOT_FOUND: unknown service shop.v1.Nothing');
    } finally {
      server.statuses.delete('shop.v1.Orders');
      known.close();
      unknown.close();
    }
  });

  it('checks a separate health port when `port` is set, over a connection of its own', async () => {
    const servingPort = await closedPort();
    const { health, endpoint, close } = checker({ port: server.port });
    try {
      const target = endpoint(servingPort);
      health.setEndpoints([target]);
      await waitFor(() => health.state(target.key) === 'healthy', 'healthy through the health port');
      assert.equal(target.pool.connectionCount, 0, 'the serving pool was not used');
    } finally {
      close();
    }
  });

  it('a server that never answers fails by timeout', async () => {
    const silent = await startHealthServer();
    silent.hang = true;
    const { health, endpoint, close } = checker();
    try {
      const target = endpoint(silent.port);
      health.setEndpoints([target]);
      await waitFor(() => health.state(target.key) === 'unhealthy', 'unhealthy');
      assert.equal(health.snapshot(target.key)!.lastFailure, 'timed out after 120 ms');
    } finally {
      close();
      silent.close();
    }
  });

  it('a refused connection fails the check', async () => {
    const { health, endpoint, close } = checker();
    try {
      const target = endpoint(await closedPort());
      health.setEndpoints([target]);
      await waitFor(() => health.state(target.key) === 'unhealthy', 'unhealthy');
      assert.match(health.snapshot(target.key)!.lastFailure!, /^connect failed: .*ECONNREFUSED/);
    } finally {
      close();
    }
  });

  it('a removed endpoint is no longer checked, and close() stops the rest', async () => {
    const other = await startHealthServer();
    const { health, endpoint, close } = checker();
    try {
      const removed = endpoint(server.port);
      const kept = endpoint(other.port);
      health.setEndpoints([removed, kept]);
      await waitFor(() => health.state(removed.key) === 'healthy' && health.state(kept.key) === 'healthy', 'both healthy');
      health.setEndpoints([kept]);
      assert.equal(health.state(removed.key), undefined);
      const checksAtRemoval = server.checks;
      const keptAtRemoval = other.checks;
      // Three more rounds on the endpoint that stayed: none on the removed one.
      await waitFor(() => other.checks >= keptAtRemoval + 3, 'three more checks of the kept endpoint');
      assert.equal(server.checks, checksAtRemoval);

      health.close();
      const atClose = other.checks;
      const sentinel = checker();
      const probe = sentinel.endpoint(other.port);
      sentinel.health.setEndpoints([probe]);
      await waitFor(() => sentinel.health.snapshot(probe.key)!.checks >= 3, 'a new checker to check three times');
      // Only the new checker's checks arrived after close() (one of each may have been on its way).
      const sentinelChecks = sentinel.health.snapshot(probe.key)!.checks;
      assert.ok(other.checks - atClose <= sentinelChecks + 2, `${other.checks - atClose} checks after close, ${sentinelChecks} from the new checker`);
      assert.equal(health.state(kept.key), undefined);
      sentinel.close();
    } finally {
      close();
      other.close();
    }
  });
});
