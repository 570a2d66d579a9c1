/**
 * A per-connection (L4) round-robin TCP balancer, as kube-proxy or a TCP load
 * balancer behaves: it picks a backend once per TCP connection and copies bytes.
 * The demo puts it beside Switchyard to show what that does to gRPC.
 */
import * as net from 'node:net';
import { listen } from '../listener/listen.ts';

export interface L4Balancer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startL4Balancer(backendPorts: readonly number[], host = '127.0.0.1'): Promise<L4Balancer> {
  let next = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const port = backendPorts[next++ % backendPorts.length]!;
    const upstream = net.connect(port, host);
    for (const socket of [client, upstream]) {
      // Without this, Nagle's algorithm and delayed ACKs stall small gRPC frames for tens of ms.
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  const { port } = await listen(server, { port: 0, host });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
