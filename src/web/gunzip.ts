/**
 * gzip for the few compressed bodies the proxy must read itself (JSON to
 * transcode). zlib is loaded at the first one, as CommonJS: a proxy that never
 * sees one does not pay for it (see src/listener/http1.ts on node:http).
 */
import { createRequire } from 'node:module';
import type * as zlib from 'node:zlib';

let loaded: typeof zlib | undefined;

/** Decompresses `data`; throws when it is not gzip or would inflate past `maxBytes`. */
export function gunzip(data: Buffer, maxBytes: number): Buffer {
  loaded ??= createRequire(import.meta.url)('node:zlib') as typeof zlib;
  return loaded.gunzipSync(data, { maxOutputLength: maxBytes + 1 });
}
