import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterLimits } from '../../src/resilience/cluster-limits.ts';
import { circuitBreakers, retryBudget } from '../../src/config/resilience-schema.ts';

const limits = (breakers: Record<string, unknown>, budget: Record<string, unknown> = {}) =>
  new ClusterLimits({ name: 'orders', circuit_breakers: circuitBreakers.parse(breakers), retry_budget: retryBudget.parse(budget) });

describe('cluster limits', () => {
  it('max_requests admits that many at once and refuses the next, naming the limit; a finished one frees a slot', () => {
    const cluster = limits({ max_requests: 2 });
    assert.equal(cluster.startRequest(), undefined);
    assert.equal(cluster.startRequest(), undefined);
    const refused = cluster.startRequest();
    assert.equal(refused?.limit, 'max_requests');
    assert.match(refused?.message ?? '', /circuit breaker max_requests \(2\) reached/);
    cluster.endRequest();
    assert.equal(cluster.startRequest(), undefined);
    assert.equal(cluster.overflows.max_requests, 1);
  });

  it('the retry budget allows budget_percent of active requests, at least min_retry_concurrency', () => {
    const cluster = limits({}, { budget_percent: 20, min_retry_concurrency: 1 });
    for (let i = 0; i < 10; i++) cluster.startRequest();
    assert.equal(cluster.startRetry(), undefined);
    assert.equal(cluster.startRetry(), undefined);
    assert.equal(cluster.startRetry()?.limit, 'retry_budget', '20% of 10 is 2');
    cluster.endRetry();
    assert.equal(cluster.startRetry(), undefined);
  });

  it('max_retries caps retries in flight whatever the budget', () => {
    const cluster = limits({ max_retries: 1 }, { budget_percent: 100, min_retry_concurrency: 10 });
    assert.equal(cluster.startRetry(), undefined);
    assert.equal(cluster.startRetry()?.limit, 'max_retries');
  });

  it('pending requests and connections have their own limits', () => {
    const cluster = limits({ max_pending_requests: 1, max_connections: 1 });
    assert.equal(cluster.startPending(), undefined);
    assert.equal(cluster.startPending()?.limit, 'max_pending_requests');
    assert.equal(cluster.startConnection(), undefined);
    assert.equal(cluster.startConnection()?.limit, 'max_connections');
  });
});
