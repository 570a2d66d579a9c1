import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEchoSetup, waitFor, type EchoClient, type EchoSetup } from '../helpers/harness.ts';
import type { EchoResponse, EchoServerHandle } from '../../src/demo/echo-service.ts';

const MESSAGES = 5_000;

describe('streaming RPCs through the proxy', () => {
  let backends: EchoServerHandle[];
  let client: EchoClient;

  let setup: EchoSetup;

  before(async () => {
    setup = await startEchoSetup(1);
    ({ backends, client } = setup);
  });

  after(() => setup.close());

  it(`client streaming: ${MESSAGES} messages arrive in full`, async () => {
    const response = await new Promise<EchoResponse>((resolve, reject) => {
      const call = client.ClientStream((error, value) => (error ? reject(error) : resolve(value!)));
      for (let i = 0; i < MESSAGES; i++) call.write({ payload: Buffer.alloc(100, i & 0xff) });
      call.end();
    });
    assert.equal(response.sequence, MESSAGES);
    assert.equal(Number(response.received_bytes), MESSAGES * 100);
  });

  it(`server streaming: ${MESSAGES} messages arrive in order, then the status`, async () => {
    const call = client.ServerStream({ count: MESSAGES, response_bytes: 64 });
    let expected = 0;
    for await (const message of call as AsyncIterable<EchoResponse>) {
      assert.equal(message.sequence, expected++);
    }
    assert.equal(expected, MESSAGES);
  });

  it(`bidi streaming: ${MESSAGES} request/response pairs`, async () => {
    const call = client.Bidi();
    const received: number[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (message: EchoResponse) => received.push(message.payload.readUInt32BE(0)));
      call.on('error', reject);
      call.on('end', resolve);
    });
    for (let i = 0; i < MESSAGES; i++) {
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(i);
      call.write({ payload });
    }
    call.end();
    await done;
    assert.equal(received.length, MESSAGES);
    assert.deepEqual(received.slice(0, 3), [0, 1, 2]);
    assert.equal(received.at(-1), MESSAGES - 1);
  });

  it('a server stream that fails mid-way reaches the client with its status', async () => {
    const call = client.ServerStream({ count: 10, fail_code: grpc.status.ABORTED, fail_message: 'gave up after 10' });
    let messages = 0;
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on('data', () => messages++);
      call.on('error', () => {});
      call.on('status', resolve);
    });
    assert.equal(messages, 10);
    assert.equal(status.code, grpc.status.ABORTED);
    assert.equal(status.details, 'gave up after 10');
  });

  it('flow control: a reader that stops reading stops the backend writing (memory stays bounded)', async () => {
    const MESSAGE_BYTES = 64 << 10;
    const TOTAL = 2_000; // 128 MiB if the proxy buffered everything
    const backend = backends[0]!;
    const call = client.ServerStream({ count: TOTAL, response_bytes: MESSAGE_BYTES });
    let received = 0;
    call.on('data', () => {
      received++;
      if (received === 1) call.pause();
    });
    call.on('error', () => {});
    await waitFor(() => received >= 1, 'the first message');

    // The backend writes only when flow control lets it; wait until its progress stalls.
    const rssBefore = process.memoryUsage().rss;
    const startCount = backend.streamedMessages;
    let last = -1;
    let stableSince = Date.now();
    await waitFor(() => {
      if (backend.streamedMessages !== last) {
        last = backend.streamedMessages;
        stableSince = Date.now();
      }
      return Date.now() - stableSince > 300;
    }, 'the backend to stall on flow control');
    const writtenBytes = (last - startCount) * MESSAGE_BYTES;
    assert.ok(writtenBytes < 48 << 20, `backend wrote ${writtenBytes} bytes while the client read ${received} message(s): the proxy is buffering`);
    assert.ok(process.memoryUsage().rss - rssBefore < 64 << 20, 'memory grew while the reader was paused');

    call.resume();
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    assert.equal(status.code, grpc.status.OK);
    assert.equal(received, TOTAL);
  });
});
