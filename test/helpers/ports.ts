/**
 * Port helpers for tests that need one port on several loopback addresses,
 * as a DNS-discovered cluster has one port for every address it resolves.
 */
import { createServer, type Server } from 'node:net';

function listen(host: string, port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

function closeAll(servers: readonly Server[]): Promise<void> {
  return Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined);
}

/**
 * A TCP port that was free on every one of `hosts` (e.g. `['127.0.0.1',
 * '127.0.0.2', '127.0.0.3']`): binds port 0 on the first, then that port on
 * the rest, retrying with a fresh port up to `attempts` times. The probe
 * sockets are closed before returning, so bind promptly; another process
 * could take the port in between, as with any port-0-then-reuse scheme.
 */
export async function findPortFreeOnAll(hosts: readonly string[], attempts = 20): Promise<number> {
  const [first, ...rest] = hosts;
  if (first === undefined) throw new Error('findPortFreeOnAll needs at least one host');
  for (let attempt = 0; attempt < attempts; attempt++) {
    const anchor = await listen(first, 0);
    if (!anchor) throw new Error(`cannot bind ${first}: is it a local address?`);
    const address = anchor.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const held = [anchor];
    let ok = true;
    for (const host of rest) {
      const server = await listen(host, port);
      if (!server) {
        ok = false;
        break;
      }
      held.push(server);
    }
    await closeAll(held);
    if (ok) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')} after ${attempts} attempts`);
}

/** A loopback port that nothing listens on: bound once by the OS, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
