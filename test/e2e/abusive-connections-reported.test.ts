/**
 * A client connection closed for abuse is logged once, with the limit and the
 * peer, and counted in switchyard_connections_closed_abusive_total (issue 12).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoSetup, waitFor, type EchoSetup, type RunningProxy } from '../helpers/harness.ts';
import { adminUrl, parseSamples } from '../helpers/admin.ts';
import { capturingLogger } from '../helpers/secure-proxy.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, ping, rawConnect } from '../helpers/raw-h2.ts';
import { connectReady } from '../helpers/raw-h2-attack.ts';

const ENHANCE_YOUR_CALM = 0xb;

describe('connections closed as abusive', () => {
  let setup: EchoSetup;
  let proxy: RunningProxy;
  const { logger, lines } = capturingLogger();

  before(async () => {
    setup = await startEchoSetup(1, {
      admin: { port: 0 },
      listeners: [{ name: 'main', port: 0, plaintext: true, http2: { control_frame_burst: 20, control_frames_per_second: 1 } }],
    }, { logger });
    ({ proxy } = setup);
  });

  after(() => setup.close());

  async function abusiveCount(limit: string): Promise<number> {
    const samples = parseSamples(await (await fetch(adminUrl(proxy.proxy, '/metrics'))).text());
    return samples.find((s) => s.name === 'switchyard_connections_closed_abusive_total' && s.labels.limit === limit)?.value ?? 0;
  }

  const malformedPath = (i: number) => frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1 + 2 * i, grpcRequestHeaders('/not/a/grpc/path'));
  for (const { limit, attack } of [
    { limit: 'protocol_violations', attack: malformedPath },
    { limit: 'control_frame_flood', attack: (i: number) => ping(i) },
  ]) {
    it(`${limit}: GOAWAY ENHANCE_YOUR_CALM, one log line naming the peer, one count`, async () => {
      const connection = await rawConnect(proxy.port);
      const peer = `127.0.0.1:${connection.socket.localPort}`;
      // In rounds of 50, each answered before the next, so as not to go past max_concurrent_streams.
      const answered = () => connection.frames.filter((f) => f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0).length;
      for (let round = 0; round < 6 && !connection.socket.destroyed; round++) {
        for (let i = 50 * round; i < 50 * (round + 1); i++) connection.send(attack(i));
        if (attack === malformedPath) await waitFor(() => connection.socket.destroyed || answered() === 50 * (round + 1), 'the round\'s answers');
      }
      await connection.closed;
      assert.equal(connection.goawayCode, ENHANCE_YOUR_CALM);
      await waitFor(async () => (await abusiveCount(limit)) === 1, `the ${limit} count`);
      const logged = lines.filter((line) => line.msg === 'client connection closed as abusive' && line.peer === peer);
      assert.equal(logged.length, 1);
      assert.equal(logged[0]!.limit, limit);
      assert.equal(logged[0]!.listener, 'main');
    });
  }

  it('a CONTINUATION flood, cut by the frame checks rather than a budget, is reported the same way (protocol_violations)', async () => {
    const before = await abusiveCount('protocol_violations');
    const connection = await connectReady(proxy.port);
    const peer = `127.0.0.1:${connection.socket.localPort}`;
    connection.send(frame(FrameType.HEADERS, 0, 1, grpcRequestHeaders()));
    for (let i = 0; i < 100 && !connection.socket.destroyed; i++) connection.send(frame(FrameType.CONTINUATION, 0, 1));
    await connection.closed;
    assert.equal(connection.goawayCode, ENHANCE_YOUR_CALM);
    await waitFor(async () => (await abusiveCount('protocol_violations')) === before + 1, 'the protocol_violations count');
    assert.equal(lines.filter((line) => line.msg === 'client connection closed as abusive' && line.peer === peer && line.limit === 'protocol_violations').length, 1);
  });
});
