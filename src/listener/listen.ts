/** Binding a server: the one place that turns net.Server's listen events into a promise. */
import type { AddressInfo, ListenOptions, Server } from 'node:net';

/**
 * Binds `server` and resolves with the bound address (the real port when 0 was asked for); rejects
 * with the bind error (EADDRINUSE, EACCES…), after which the server is not listening. Errors after
 * the bind are the caller's to handle.
 */
export function listen(server: Server, options: ListenOptions): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
