import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rstName, statusFromHttp, statusFromReset } from '../../src/proxy/status-mapping.ts';
import { Status } from '../../src/grpc/status.ts';

describe('status mapping', () => {
  it('a non-200 HTTP answer maps as gRPC clients map it', () => {
    assert.equal(statusFromHttp(400), Status.INTERNAL);
    assert.equal(statusFromHttp(401), Status.UNAUTHENTICATED);
    assert.equal(statusFromHttp(403), Status.PERMISSION_DENIED);
    assert.equal(statusFromHttp(404), Status.UNIMPLEMENTED);
    for (const code of [429, 502, 503, 504]) assert.equal(statusFromHttp(code), Status.UNAVAILABLE);
    assert.equal(statusFromHttp(500), Status.UNKNOWN);
  });

  it('a stream reset keeps its meaning; a lost connection is UNAVAILABLE whatever the code', () => {
    assert.equal(statusFromReset(0x8, false), Status.CANCELLED);
    assert.equal(statusFromReset(0xb, false), Status.RESOURCE_EXHAUSTED);
    assert.equal(statusFromReset(0xc, false), Status.PERMISSION_DENIED);
    assert.equal(statusFromReset(0x7, false), Status.UNAVAILABLE);
    assert.equal(statusFromReset(0x2, false), Status.INTERNAL);
    assert.equal(statusFromReset(0x8, true), Status.UNAVAILABLE);
    assert.equal(statusFromReset(0x2, true), Status.UNAVAILABLE);
  });

  it('names the codes', () => {
    assert.equal(rstName(0x2), 'INTERNAL_ERROR');
    assert.equal(rstName(0xb), 'ENHANCE_YOUR_CALM');
    assert.equal(rstName(99), 'code 99');
  });
});
