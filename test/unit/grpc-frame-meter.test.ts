import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GrpcFrameMeter } from '../../src/grpc/frame-meter.ts';

function frame(length: number, body = true): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(length, 1);
  return body ? Buffer.concat([prefix, Buffer.alloc(length)]) : prefix;
}

describe('GrpcFrameMeter', () => {
  it('accepts messages up to the limit, whole or in any split', () => {
    const stream = Buffer.concat([frame(10), frame(0), frame(100), frame(7)]);
    for (let split = 1; split <= stream.length; split++) {
      const meter = new GrpcFrameMeter(100);
      for (let offset = 0; offset < stream.length; offset += split) {
        assert.equal(meter.feed(stream.subarray(offset, offset + split)), -1, `split ${split} at ${offset}`);
      }
    }
  });

  it('reports an oversized message at its prefix, however the prefix is split', () => {
    const stream = Buffer.concat([frame(3), frame(101, false)]);
    for (let split = 1; split <= stream.length; split++) {
      const meter = new GrpcFrameMeter(100);
      let result = -1;
      for (let offset = 0; offset < stream.length && result < 0; offset += split) result = meter.feed(stream.subarray(offset, offset + split));
      assert.equal(result, 101, `split ${split}`);
    }
  });

  it('reads the 4-byte length as unsigned: a 2 GiB or 4 GiB claim is reported as such', () => {
    assert.equal(new GrpcFrameMeter(4 << 20).feed(Buffer.from([0, 0x80, 0, 0, 0])), 2 ** 31);
    assert.equal(new GrpcFrameMeter(4 << 20).feed(Buffer.from([1, 0xff, 0xff, 0xff, 0xff])), 2 ** 32 - 1);
  });

  it('does not count the compressed flag as length', () => {
    assert.equal(new GrpcFrameMeter(10).feed(Buffer.concat([Buffer.from([1, 0, 0, 0, 10]), Buffer.alloc(10)])), -1);
  });
});
