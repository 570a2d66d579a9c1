/**
 * A client-streaming or bidi call that sends no message: grpc-js half-closes it
 * with HEADERS and then an empty DATA frame with END_STREAM, usually in the same
 * read. The half-close must reach the backend, whenever it arrives relative to
 * the proxy picking up the stream (issue 12: it hung until its deadline).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { waitFor, startEchoSetup, type EchoClient, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, rawConnect } from '../helpers/raw-h2.ts';

/** Generous: a call that is answered at all is answered in milliseconds; a hang runs into it. */
const DEADLINE_MS = 5_000;

function zeroMessageClientStream(client: EchoClient): Promise<number> {
  return new Promise((resolve, reject) => {
    const call = client.ClientStream(new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (error, response) => {
      if (error) reject(error);
      else resolve(Number(response!.received_bytes));
    });
    call.end();
  });
}

function zeroMessageBidi(client: EchoClient): Promise<number> {
  return new Promise((resolve, reject) => {
    const call = client.Bidi(new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS });
    let messages = 0;
    call.on('data', () => messages++);
    call.on('error', reject);
    call.on('status', (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) resolve(messages);
    });
    call.end();
  });
}

describe('calls that send no message', () => {
  let pki: TestPki;
  let plainSetup: EchoSetup;
  let secureSetup: EchoSetup;
  let plain: RunningProxy;
  let plainClient: EchoClient;
  let secureClient: EchoClient;

  before(async () => {
    pki = await makeTestPki();
    [plainSetup, secureSetup] = await Promise.all([startEchoSetup(2), startEchoSetup(2, {}, { tls: { pki } })]);
    ({ proxy: plain, client: plainClient } = plainSetup);
    secureClient = secureSetup.client;
  });

  after(async () => {
    await Promise.all([plainSetup.close(), secureSetup.close()]);
    await pki.cleanup();
  });

  for (const [name, client] of [['h2c', () => plainClient], ['TLS', () => secureClient]] as const) {
    it(`client streaming with no message completes over ${name}`, async () => {
      for (let i = 0; i < 5; i++) assert.equal(await zeroMessageClientStream(client()), 0);
    });

    it(`bidi with no message completes over ${name}`, async () => {
      for (let i = 0; i < 5; i++) assert.equal(await zeroMessageBidi(client()), 0);
    });
  }

  for (const [name, sameWrite] of [['in the same write as HEADERS', true], ['in a later write', false]] as const) {
    it(`raw frames: an empty DATA with END_STREAM ${name} half-closes the call`, async () => {
      const connection = await rawConnect(plain.port);
      const headers = frame(FrameType.HEADERS, Flag.END_HEADERS, 1, grpcRequestHeaders('/switchyard.demo.v1.Echo/ClientStream'));
      const halfClose = frame(FrameType.DATA, Flag.END_STREAM, 1);
      if (sameWrite) {
        connection.send(Buffer.concat([headers, halfClose]));
      } else {
        const endpoints = [...plain.proxy.clusters.get('echo')!.endpoints.values()];
        const picked = () => endpoints.reduce((sum, e) => sum + e.totalRequests, 0);
        const before = picked();
        connection.send(headers);
        // The half-close comes only once the proxy has routed the stream and picked a backend for it.
        await waitFor(() => picked() > before, 'the stream to be routed');
        connection.send(halfClose);
      }
      // The backend answers only once it has seen the half-close; its trailers end the stream.
      await waitFor(() => connection.frames.some((f) => f.streamId === 1 && f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0), 'the call to be answered', DEADLINE_MS);
      connection.close();
    });
  }
});
