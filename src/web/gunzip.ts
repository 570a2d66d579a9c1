/**
 * gzip for the few compressed bodies the proxy must read itself (JSON to
 * transcode). zlib is loaded at the first one (src/builtins.ts): a proxy that
 * never sees one does not pay for it.
 */
import { zlibModule } from '../builtins.ts';

/** Decompresses `data`; throws when it is not gzip or would inflate past `maxBytes`. */
export function gunzip(data: Buffer, maxBytes: number): Buffer {
  return zlibModule().gunzipSync(data, { maxOutputLength: maxBytes + 1 });
}
