import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { canUpdateInPlace } from '../../src/lifecycle/reload-plan.ts';
import { connectionGuardConfig, idleTimeouts, localSettings, serverLimits } from '../../src/listener/listener-limits.ts';

const listenerOf = (extra: Record<string, unknown> = {}) =>
  configSchema.parse({ listeners: [{ name: 'main', port: 8080, plaintext: true, ...extra }] }).listeners[0]!;

describe('listener abuse limits', () => {
  it('every HTTP/2 limit of a connection comes from the config, with safe defaults', () => {
    assert.deepEqual(localSettings(listenerOf()), {
      maxConcurrentStreams: 100,
      streamWindow: 64 << 10,
      connectionWindow: 16 << 20,
      maxHeaderListSize: 16 << 10,
      maxHeaderFields: 128,
      enableConnectProtocol: true,
    });
    assert.deepEqual(serverLimits(listenerOf()), {
      controlFrameBurst: 1000,
      controlFramesPerSecond: 100,
      streamResetBurst: 200,
      streamResetRate: 100,
      handshakeTimeoutMs: 10_000,
      maxBufferedBytes: 64 << 20,
    });
    const guard = connectionGuardConfig(listenerOf());
    assert.equal(guard.rpcsPerSecond, undefined);
    assert.equal(guard.maxRequestMessageBytes, 4 << 20);
    assert.equal(guard.stalledStreamTimeoutMs, 30_000);
    assert.deepEqual(idleTimeouts(listenerOf()), { connectionMs: 300_000, streamMs: undefined }, 'stream idle timeout is off by default');
  });

  it('`off` turns a timeout off', () => {
    assert.deepEqual(idleTimeouts(listenerOf({ http2: { idle_timeout: 'off', stream_idle_timeout: '2s' } })), { connectionMs: undefined, streamMs: 2_000 });
    assert.equal(connectionGuardConfig(listenerOf({ http2: { stalled_stream_timeout: 'off' } })).stalledStreamTimeoutMs, undefined);
  });

  it('a reload that changes HTTP/2 limits is applied in place (to new connections); a new address binds anew', () => {
    const base = listenerOf();
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ http2: { stream_reset_burst: 50 } }), undefined), true);
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ http2: { max_session_memory_mb: 32 } }), undefined), true);
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ http2: { max_request_message_bytes: 1024 } }), undefined), true);
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ max_connections: 5 }), undefined), true);
    assert.equal(canUpdateInPlace(base, undefined, listenerOf({ port: 8081 }), undefined), false);
  });
});
