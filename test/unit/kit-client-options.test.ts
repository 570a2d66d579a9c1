import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { buildServiceConfig, createChannel, createChannelOptions, LastGoodCertificateProvider } from '../../src/kit/client/index.ts';
import { makeTestPki } from '../helpers/certs.ts';

describe('client kit options', () => {
  it('builds round_robin, a default retry policy with throttling, and per-method overrides', () => {
    const config = buildServiceConfig({
      target: 'dns:///echo:50051',
      timeoutMs: 2_500,
      methods: [
        { name: 'shop.v1.Orders/Create', retry: false },
        { name: 'shop.v1.Reports', timeoutMs: null, retry: { maxAttempts: 4, initialBackoffMs: 50, retryableStatusCodes: [grpc.status.UNAVAILABLE, 'resource_exhausted'] } },
      ],
    }, true);
    assert.deepEqual(config.loadBalancingConfig, [{ round_robin: {} }]);
    assert.deepEqual(config.methodConfig, [
      { name: [{ service: 'shop.v1.Orders', method: 'Create' }], timeout: { seconds: 2, nanos: 500_000_000 } },
      {
        name: [{ service: 'shop.v1.Reports' }],
        retryPolicy: { maxAttempts: 4, initialBackoff: '0.05s', maxBackoff: '1s', backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'] },
      },
      {
        name: [{}],
        timeout: { seconds: 2, nanos: 500_000_000 },
        retryPolicy: { maxAttempts: 3, initialBackoff: '0.1s', maxBackoff: '1s', backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] },
      },
    ]);
    assert.deepEqual(config.retryThrottling, { maxTokens: 10, tokenRatio: 0.1 });
  });

  it('leaves the policy of an xds target to the control plane, and can turn retries off', () => {
    const options = createChannelOptions({ target: 'xds:///echo', retry: false });
    assert.deepEqual(JSON.parse(options['grpc.service_config'] as string), { methodConfig: [] });
    assert.equal(options['grpc.dns_min_time_between_resolutions_ms'], undefined);
    assert.equal(options['grpc.enable_retries'], 1);
  });

  it('refuses what grpc-js would refuse later or silently misread', () => {
    assert.throws(() => createChannelOptions({ target: 'dns:///echo:50051', retry: { maxAttempts: 1 } }), /maxAttempts/);
    assert.throws(() => createChannelOptions({ target: 'dns:///echo:50051', retry: { retryableStatusCodes: ['NOPE'] } }), /status code name/);
    assert.throws(() => createChannelOptions({ target: 'dns:///echo:50051', methods: [{ name: 'no slashes/at/all' }] }), /methods\[\]\.name/);
    assert.throws(() => createChannelOptions({ target: 'dns:///echo:50051', keepaliveMs: 10 }), /keepaliveMs/);
    // Without GRPC_NODE_USE_ALTERNATIVE_RESOLVER, grpc-js ignores a DNS server in the target.
    assert.throws(() => createChannelOptions({ target: 'dns://10.0.0.10:53/echo:50051' }), /GRPC_NODE_USE_ALTERNATIVE_RESOLVER/);
  });

  it('gives grpc-js a service config it accepts', () => {
    const channel = createChannel({ target: 'dns:///localhost:1', timeoutMs: 100, methods: [{ name: 'a.B/C', waitForReady: true }] });
    channel.close();
  });
});

describe('LastGoodCertificateProvider', () => {
  it('passes on matching pairs and keeps the last good one over a half-written rotation or a missing file', async () => {
    const [pki, other] = await Promise.all([makeTestPki(), makeTestPki()]);
    try {
      const listeners: Array<(update: grpc.experimental.IdentityCertificateUpdate | null) => void> = [];
      const inner = {
        addCaCertificateListener() {},
        removeCaCertificateListener() {},
        addIdentityCertificateListener(listener: (update: grpc.experimental.IdentityCertificateUpdate | null) => void) { listeners.push(listener); },
        removeIdentityCertificateListener() {},
      } satisfies grpc.experimental.CertificateProvider;
      const provider = new LastGoodCertificateProvider(inner);
      const seen: Array<grpc.experimental.IdentityCertificateUpdate | null> = [];
      provider.addIdentityCertificateListener((update) => seen.push(update));
      const emit = listeners[0]!;

      emit({ certificate: pki.client.certPem, privateKey: pki.client.keyPem });
      emit({ certificate: other.client.certPem, privateKey: pki.client.keyPem }); // the certificate rotated, the key not yet
      emit(null); // a file missing for a moment
      emit({ certificate: pki.client.certPem, privateKey: pki.client.keyPem }); // unchanged: not passed on again
      emit({ certificate: other.client.certPem, privateKey: other.client.keyPem });
      assert.deepEqual(seen.map((update) => update?.certificate.toString()), [pki.client.certPem.toString(), other.client.certPem.toString()]);
      assert.equal(provider.stats.refused, 2);
    } finally {
      await Promise.all([pki.cleanup(), other.cleanup()]);
    }
  });
});
