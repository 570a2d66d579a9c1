/**
 * Clients that stop reading must not make the proxy buffer without bound
 * (issue 12: five connections announcing INITIAL_WINDOW_SIZE 0, with 100
 * server streams each and no WINDOW_UPDATE, made the backends push 531 MiB into
 * the proxy; a bystander saw errors and a healthy endpoint was ejected). What
 * is held per stream is one window, the backend stops sending while its client
 * does not read, and a stream stalled for stalled_stream_timeout is reset.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnEchoProcess, type EchoProcess } from '../helpers/echo-process.ts';
import { waitFor } from '../helpers/harness.ts';
import { startChildProxy, wellBehavedLoad, type ChildProxy, type LoadReport } from '../helpers/abuse.ts';
import { Flag, FrameType, frame, grpcRequestHeaders, rawConnect, type RawConnection } from '../helpers/raw-h2.ts';

const SLOW_CONNECTIONS = 5;
const STREAMS_PER_CONNECTION = 100;
/**
 * RSS the attack may add to the warmed-up proxy. 500 stalled streams hold at most one 64 KiB upstream
 * window and one write buffer (16 KiB) each, about 50 MiB, plus two node:http2 stream objects each and
 * garbage not yet collected: measured 95–110 MiB. It was 470 MiB with 1 MiB windows.
 */
const RSS_GROWTH_BUDGET = 150 << 20;

/** An EchoRequest asking ServerStream for 10,000 responses of 16 KiB: 160 MB per stream if nothing held it back. */
function serverStreamRequest(): Buffer {
  // Fields: count (5) = 10000, response_bytes (6) = 16384, as protobuf varints.
  const message = Buffer.from([0x28, 0x90, 0x4e, 0x30, 0x80, 0x80, 0x01]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

describe('clients that never read', () => {
  let backends: EchoProcess[];
  let proxy: ChildProxy;
  let baselineRss: number;

  before(async () => {
    backends = await Promise.all([spawnEchoProcess('backend-0'), spawnEchoProcess('backend-1')]);
    proxy = await startChildProxy(() => `
listeners:
  - name: main
    port: 0
    plaintext: true
    http2: { stalled_stream_timeout: 2s }
clusters:
  - name: echo
    endpoints: [${backends.map((b) => `{ address: 127.0.0.1, port: ${b.port} }`).join(', ')}]
    outlier_detection: { consecutive_gateway_errors: 3, max_ejection_percent: 100 }
routes:
  - match: { prefix: / }
    cluster: echo
`);
    const warm = wellBehavedLoad(`127.0.0.1:${proxy.port}`);
    await waitFor(() => warm.calls > 200, 'the warm-up');
    assert.deepEqual((await warm.stop()).errors, []);
    baselineRss = await proxy.rss();
  });

  after(async () => {
    await proxy.stop();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('RSS stays within budget, a bystander sees no error, stalled streams are reset after the timeout', async () => {
    const bystander = wellBehavedLoad(`127.0.0.1:${proxy.port}`, 4);
    const connections: RawConnection[] = [];
    let report: LoadReport;
    try {
      const request = serverStreamRequest();
      for (let c = 0; c < SLOW_CONNECTIONS; c++) {
        const connection = await rawConnect(proxy.port, { initialWindowSize: 0 });
        connections.push(connection);
        const frames: Buffer[] = [];
        for (let i = 0; i < STREAMS_PER_CONNECTION; i++) {
          const id = 1 + 2 * i;
          frames.push(frame(FrameType.HEADERS, Flag.END_HEADERS, id, grpcRequestHeaders('/switchyard.demo.v1.Echo/ServerStream')));
          frames.push(frame(FrameType.DATA, Flag.END_STREAM, id, request));
        }
        connection.send(Buffer.concat(frames));
      }
      // Every stream has been answered with headers: the backends are streaming into the proxy.
      const headersOn = (connection: RawConnection) => connection.frames.filter((f) => f.type === FrameType.HEADERS).length;
      await waitFor(() => connections.every((c) => headersOn(c) >= STREAMS_PER_CONNECTION), 'every stream to have response headers', 20_000);
      let peakRss = 0;
      // While the streams are stalled (before the 2 s timeout), memory stays within budget.
      for (let i = 0; i < 10; i++) {
        peakRss = Math.max(peakRss, await proxy.rss());
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const growth = `RSS grew by ${((peakRss - baselineRss) / 2 ** 20).toFixed(1)} MiB`;
      assert.ok(peakRss - baselineRss < RSS_GROWTH_BUDGET, growth);
      console.log(`# ${growth} with ${SLOW_CONNECTIONS * STREAMS_PER_CONNECTION} stalled streams`);
      // After the stalled-stream timeout, every stalled stream is reset.
      const resets = (connection: RawConnection) => connection.frames.filter((f) => f.type === FrameType.RST_STREAM).length;
      await waitFor(() => connections.every((c) => resets(c) >= STREAMS_PER_CONNECTION), 'the stalled streams to be reset', 20_000);
    } finally {
      for (const connection of connections) connection.close();
      report = await bystander.stop();
    }
    assert.deepEqual(report.errors, [], 'the bystander saw no error');
    assert.ok(proxy.alive());
    assert.deepEqual(proxy.logs.filter((entry) => /ejected/.test(entry.msg ?? '')), [], 'no endpoint was ejected');
  });
});
