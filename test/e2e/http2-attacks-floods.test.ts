/**
 * Floods of frames that are each legal but cost the server work for nothing:
 * SETTINGS and PING (each must be answered), PRIORITY (accepted and ignored),
 * WINDOW_UPDATE (no data to need them), empty DATA frames. SETTINGS, PING and
 * PRIORITY draw on control_frame_burst / control_frames_per_second; the rest
 * are glitches (200 at once, then 20/s). Past either the client gets GOAWAY
 * ENHANCE_YOUR_CALM. Each flood runs against a Switchyard process with a
 * bystander calling through it (test/helpers/abuse.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startAttackBench, type AttackBench } from '../helpers/abuse.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, ping, settings } from '../helpers/raw-h2.ts';
import { data, echoRequestMessage, ErrorCode, flood, priority, Setting, settingsWith, windowUpdate } from '../helpers/raw-h2-attack.ts';

/** What a flood of small frames adds to the proxy's RSS (what it read and wrote, garbage until collected). Measured: 0–2 MiB. */
const RSS_BUDGET = 16 << 20;
const FRAMES_PER_BATCH = 100;

const batchOf = (make: (i: number) => Buffer) => (batch: number) => Buffer.concat(Array.from({ length: FRAMES_PER_BATCH }, (_, i) => make(batch * FRAMES_PER_BATCH + i)));

const floods: { name: string; frames: (i: number) => Buffer; setup?: Buffer }[] = [
  { name: 'SETTINGS', frames: () => settings() },
  { name: 'PING', frames: (i) => ping(i) },
  { name: 'PRIORITY on idle streams', frames: (i) => priority(1 + 2 * (i % 1_000)) },
  { name: 'WINDOW_UPDATE on the connection', frames: () => windowUpdate(0, 1) },
  // Stream 1 is opened and left open (the request never ends): the updates are on an open stream with nothing to send.
  { name: 'WINDOW_UPDATE on an open stream', setup: frame(FrameType.HEADERS, Flag.END_HEADERS, 1, grpcRequestHeaders()), frames: () => windowUpdate(1, 1) },
  { name: 'empty DATA', setup: frame(FrameType.HEADERS, Flag.END_HEADERS, 1, grpcRequestHeaders()), frames: () => data(1) },
];

describe('HTTP/2 attacks: control frame and empty frame floods', () => {
  let bench: AttackBench;

  before(async () => {
    bench = await startAttackBench();
  });

  after(() => bench.close());

  for (const { name, frames, setup } of floods) {
    it(`${name} flood gets GOAWAY ENHANCE_YOUR_CALM`, async () => {
      const outcome = await bench.attack(`${name} flood`, { rssBudget: RSS_BUDGET }, async (connection) => {
        if (setup) connection.send(setup);
        await flood(connection, batchOf(frames), 2_000);
      });
      assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
    });
  }

  it('SETTINGS frames of 2,730 entries each (a 16 KB frame, every entry an INITIAL_WINDOW_SIZE that moves 100 open streams) get GOAWAY ENHANCE_YOUR_CALM', async () => {
    const slow = echoRequestMessage({ delayMs: 10_000 });
    const outcome = await bench.attack('SETTINGS with thousands of entries', { rssBudget: RSS_BUDGET }, async (connection) => {
      connection.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => [frame(FrameType.HEADERS, Flag.END_HEADERS, 1 + 2 * i, grpcRequestHeaders()), data(1 + 2 * i, slow, Flag.END_STREAM)]).flat()));
      const entries = Array.from({ length: 2_730 }, (_, i) => [Setting.INITIAL_WINDOW_SIZE, 65_535 + (i % 2)] as const);
      const big = settingsWith(entries);
      await flood(connection, () => big, 2_000);
    });
    assert.equal(outcome.connection.answers.goAway?.code, ErrorCode.ENHANCE_YOUR_CALM);
  });
});
