/**
 * A TCP proxy that sits between Switchyard and one backend and misbehaves on
 * request: adds latency, blackholes (keeps connections open but forwards
 * nothing, as a dead node or a dropped route does), or resets every connection.
 * Nothing like toxiproxy installs here, and tc netem on loopback would disturb
 * the whole machine.
 */
import * as net from 'node:net';

export interface FaultProxy {
  readonly port: number;
  /** Delay added to every chunk in both directions, ms. */
  latencyMs: number;
  /** While true, bytes are swallowed in both directions. */
  blackhole: boolean;
  /** While true, bytes towards the backend are swallowed; its answers still come back. */
  blackholeRequests: boolean;
  /** performance.now() when bytes from the backend were last relayed. */
  readonly lastAnswerAt: number;
  /** Destroys every open connection at once (the peers see a reset). */
  resetAll(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  const sockets = new Set<net.Socket>();
  const state = { latencyMs: 0, blackhole: false, blackholeRequests: false, lastAnswerAt: 0 };
  const relay = (from: net.Socket, to: net.Socket, towardsBackend: boolean) => {
    from.on('data', (chunk: Buffer) => {
      if (state.blackhole || (towardsBackend && state.blackholeRequests)) return;
      if (!towardsBackend) state.lastAnswerAt = performance.now();
      if (state.latencyMs > 0) setTimeout(() => to.destroyed || to.writableEnded || to.write(chunk), state.latencyMs);
      else to.write(chunk);
    });
    // The FIN travels with the same delay as the data before it, or it would overtake it.
    from.on('end', () => {
      if (state.latencyMs > 0) setTimeout(() => to.end(), state.latencyMs);
      else to.end();
    });
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    relay(client, upstream, true);
    relay(upstream, client, false);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get latencyMs() { return state.latencyMs; },
    set latencyMs(value: number) { state.latencyMs = value; },
    get blackhole() { return state.blackhole; },
    set blackhole(value: boolean) { state.blackhole = value; },
    get blackholeRequests() { return state.blackholeRequests; },
    get lastAnswerAt() { return state.lastAnswerAt; },
    set blackholeRequests(value: boolean) { state.blackholeRequests = value; },
    resetAll() {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
