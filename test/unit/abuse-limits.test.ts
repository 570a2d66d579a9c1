import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { canUpdateInPlace } from '../../src/lifecycle/reload-plan.ts';
import { connectionGuardConfig, serverAbuseOptions } from '../../src/security/listener-limits.ts';

const listenerOf = (extra: Record<string, unknown> = {}) =>
  configSchema.parse({ listeners: [{ name: 'main', port: 8080, plaintext: true, ...extra }] }).listeners[0]!;

describe('listener abuse limits', () => {
  it('sets every Node HTTP/2 limit explicitly, from safe defaults', () => {
    assert.deepEqual(serverAbuseOptions(listenerOf()), {
      maxSessionMemory: 64,
      maxHeaderListPairs: 128,
      maxSettings: 32,
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      unknownProtocolTimeout: 10_000,
      streamResetBurst: 200,
      streamResetRate: 100,
    });
    const guard = connectionGuardConfig(listenerOf());
    assert.equal(guard.idleTimeoutMs, 300_000);
    assert.equal(guard.streamIdleTimeoutMs, undefined, 'stream idle timeout is off by default');
    assert.equal(guard.rpcsPerSecond, undefined);
    assert.equal(guard.maxRequestMessageBytes, 4 << 20);
    // The guard's bucket for streams reset before routing has nghttp2's limits.
    assert.equal(guard.streamResetBurst, 200);
    assert.equal(guard.streamResetRate, 100);
  });

  it('`off` turns the idle timeout off', () => {
    assert.equal(connectionGuardConfig(listenerOf({ http2: { idle_timeout: 'off' } })).idleTimeoutMs, undefined);
  });

  it('a reload that changes a server option binds the listener anew; a guard-only change is applied in place', () => {
    const base = listenerOf();
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ http2: { stream_reset_burst: 50 } }), undefined), false);
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ http2: { max_session_memory_mb: 32 } }), undefined), false);
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ http2: { max_request_message_bytes: 1024 } }), undefined), true);
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ max_connections: 5 }), undefined), true);
  });
});
