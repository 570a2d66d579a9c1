/**
 * A port that cannot be bound at start, named the way the config names it.
 * The OS says only "listen EADDRINUSE: address already in use 0.0.0.0:9901";
 * with a serving listener, the health endpoint and the admin interface in one
 * process, an operator needs to know which of them it was and where to change
 * it (a replacement proxy started while the old one drains hits this).
 */

/** Thrown by Switchyard.start when a listener, the health endpoint or the admin interface cannot listen. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  /** The OS error code (EADDRINUSE, EACCES, EADDRNOTAVAIL), for `switchyard run` to print first. */
  readonly code: string;
  /** Where the port is set: `listeners[0].port`, `health.port`, `admin.port`. */
  readonly configPath: string;

  constructor(configPath: string, what: string, address: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? 'ELISTEN';
    super(`${configPath}: ${what} cannot listen on ${address}: ${explain(code, cause)}`, { cause });
    this.code = code;
    this.configPath = configPath;
  }
}

/**
 * Awaits `binding` and rethrows its failure as a ListenError naming `what`
 * (`listener "public"`, `the health endpoint`) and its `configPath`.
 */
export async function namingTheListener<T>(configPath: string, what: string, address: { readonly address: string; readonly port: number }, binding: Promise<T>): Promise<T> {
  try {
    return await binding;
  } catch (error) {
    // Only the socket's own failure; anything else (a certificate that does not load, say) names itself already.
    const syscall = (error as NodeJS.ErrnoException | undefined)?.syscall;
    if (syscall !== 'listen' && syscall !== 'bind') throw error;
    throw new ListenError(configPath, what, formatAddress(address), error);
  }
}

function explain(code: string, cause: unknown): string {
  switch (code) {
    case 'EADDRINUSE':
      return 'the address is already in use. Another process holds the port: a Switchyard still draining on this host (wait for it to exit), or something else (choose another port)';
    case 'EACCES':
      return 'permission denied (ports below 1024 need privileges; choose a higher port)';
    case 'EADDRNOTAVAIL':
      return 'no interface of this host has that address';
    default:
      return (cause as Error | undefined)?.message ?? String(cause);
  }
}

function formatAddress({ address, port }: { readonly address: string; readonly port: number }): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
