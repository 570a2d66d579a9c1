import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs, compileRetryRules, isTransparent, policyRetries, pushback, TRANSPARENT_ONLY } from '../../src/resilience/retry-rules.ts';
import { answered, failed } from '../../src/grpc/outcome.ts';
import { Status } from '../../src/grpc/status.ts';
import { retryPolicy } from '../../src/config/resilience-schema.ts';

const rules = (policy: Record<string, unknown>) => compileRetryRules(retryPolicy.parse(policy));

describe('retry rules', () => {
  it('only what the backend never processed is transparent', () => {
    assert.equal(isTransparent(failed('upstream_connect_failure')), true);
    assert.equal(isTransparent(failed('upstream_refused')), true);
    assert.equal(isTransparent(failed('upstream_reset')), false);
    assert.equal(isTransparent(answered(Status.UNAVAILABLE)), false);
  });

  it('a policy retries the statuses and conditions it names, and nothing else', () => {
    const policy = rules({ retry_on: ['unavailable', 'reset'], num_retries: 2 });
    assert.equal(policyRetries(policy, answered(Status.UNAVAILABLE)), true);
    assert.equal(policyRetries(policy, answered(Status.INTERNAL)), false);
    assert.equal(policyRetries(policy, failed('upstream_reset')), true);
    assert.equal(policyRetries(policy, failed('upstream_protocol_error')), true, 'a stream without a status is retried as a reset');
    assert.equal(policyRetries(policy, failed('upstream_connect_failure')), false);
    assert.equal(policyRetries(policy, failed('per_try_timeout')), true, 'a per-try timeout is retried whenever retries are allowed');
    assert.equal(policyRetries(policy, failed('response_too_large')), false);
    assert.equal(policyRetries(TRANSPARENT_ONLY, failed('per_try_timeout')), false);
  });

  it('a non-gRPC HTTP answer is retried by its mapped status', () => {
    const policy = rules({ retry_on: ['unavailable'] });
    assert.equal(policyRetries(policy, failed('upstream_protocol_error', Status.UNAVAILABLE)), true);
    assert.equal(policyRetries(policy, failed('upstream_protocol_error', Status.UNIMPLEMENTED)), false);
  });

  it('backoff is full jitter under min(max, base × 2^n)', () => {
    const policy = rules({ base_interval: '25ms', max_interval: '250ms' });
    assert.equal(backoffMs(policy, 0, () => 0.999), 24);
    assert.equal(backoffMs(policy, 2, () => 0.999), 99);
    assert.equal(backoffMs(policy, 10, () => 0.999), 249);
    assert.equal(backoffMs(policy, 3, () => 0), 0);
  });

  it('grpc-retry-pushback-ms: a delay, or "do not retry" for anything malformed', () => {
    assert.equal(pushback(undefined), undefined);
    assert.equal(pushback('120'), 120);
    assert.equal(pushback('-1'), 'stop');
    assert.equal(pushback('soon'), 'stop');
    assert.equal(pushback(['5', '9']), 5);
  });
});
