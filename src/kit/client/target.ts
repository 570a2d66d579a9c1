/**
 * Target checks: the schemes the kit balances over, and the traps in how grpc-js reads them.
 */
import { createRequire } from 'node:module';

export interface ParsedTarget {
  readonly scheme: 'dns' | 'xds';
  /** DNS server (dns) or xDS authority, '' when absent. */
  readonly authority: string;
  /** `name:port` (dns) or the xDS listener name. */
  readonly path: string;
}

const TARGET = /^(dns|xds):\/\/([^/]*)\/(.+)$/;

/** Parses and checks a `dns:///name:port` or `xds:///name` target; throws with the fix in the message. */
export function parseTarget(target: string): ParsedTarget {
  const match = TARGET.exec(target);
  if (!match) {
    throw new Error(
      `client kit: target "${target}" must be dns:///name:port (a headless Service) or xds:///name; ` +
        'write the scheme, so nobody mistakes it for a single address',
    );
  }
  const scheme = match[1] as 'dns' | 'xds';
  const authority = match[2]!;
  const path = match[3]!;
  if (scheme === 'dns') {
    // grpc-js's DNS default port is 443, which is never what a headless Service serves gRPC on.
    if (!/^(\[[^\]]+\]|[^:[\]]+):\d+$/.test(path)) {
      throw new Error(`client kit: target "${target}" needs an explicit port (dns:///name:port); grpc-js would assume 443`);
    }
    // grpc-js only honours a DNS server in the authority with its c-ares resolver, which it picks
    // once, when it loads, from this variable; otherwise it calls getaddrinfo and the authority is
    // silently ignored.
    if (authority !== '' && process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER !== 'true') {
      throw new Error(
        `client kit: target "${target}" names a DNS server, which grpc-js ignores unless ` +
          'GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true is set before @grpc/grpc-js is loaded',
      );
    }
  }
  return { scheme, authority, path };
}

let xdsRegistered = false;

/** Registers the xds: resolver and policies of @grpc/grpc-js-xds, once, only when an xds target is used. */
export function ensureXdsRegistered(): void {
  if (xdsRegistered) return;
  const require = createRequire(import.meta.url);
  (require('@grpc/grpc-js-xds') as { register(): void }).register();
  xdsRegistered = true;
}
