/**
 * Turns a decoded field list into a header map, checking what RFC 9113 §8.2–8.3
 * asks of HTTP/2 fields: lower-case names of valid characters, values without
 * NUL, CR or LF or surrounding whitespace, pseudo-header fields first and only
 * the defined ones, once each, no connection-specific fields, `te` only
 * "trailers". A message that breaks a rule is malformed: a stream error the
 * caller answers with RST_STREAM PROTOCOL_ERROR (§8.1.1).
 */
import { NEVER_INDEXED_FIELDS, type HeaderMap } from '../grpc/streams.ts';
import type { HeaderList } from './hpack/decoder.ts';
import { FieldChecked, validName, validValue } from './field-syntax.ts';

const CONNECTION_SPECIFIC = new Set(['connection', 'proxy-connection', 'keep-alive', 'transfer-encoding', 'upgrade']);
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);

/** A malformed message: why (for logs and counters). */
export class Malformed {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

/** Request headers: the map, or why the request is malformed. `extendedConnect`: RFC 8441's :protocol is allowed. */
export function requestHeaders(list: HeaderList, extendedConnect: boolean): HeaderMap | Malformed {
  const map = toMap(list, REQUEST_PSEUDO);
  if (map instanceof Malformed) return map;
  const method = map[':method'];
  if (typeof method !== 'string' || method === '') return new Malformed(':method is missing');
  if (map[':protocol'] !== undefined && (!extendedConnect || method !== 'CONNECT')) return new Malformed(':protocol without an extended CONNECT (RFC 8441)');
  if (method === 'CONNECT' && map[':protocol'] === undefined) {
    if (map[':scheme'] !== undefined || map[':path'] !== undefined) return new Malformed('CONNECT with :scheme or :path (§8.5)');
    if (map[':authority'] === undefined) return new Malformed('CONNECT without :authority (§8.5)');
    return map;
  }
  if (typeof map[':scheme'] !== 'string' || map[':scheme'] === '') return new Malformed(':scheme is missing');
  if (typeof map[':path'] !== 'string' || map[':path'] === '') return new Malformed(':path is missing or empty');
  return map;
}

/** Response headers: only :status, three digits. */
export function responseHeaders(list: HeaderList): HeaderMap | Malformed {
  const map = toMap(list, STATUS_ONLY);
  if (map instanceof Malformed) return map;
  const status = map[':status'];
  if (typeof status !== 'string' || !/^[1-9]\d\d$/.test(status)) return new Malformed(':status is missing or not three digits');
  return map;
}

/** Trailers: no pseudo-header fields at all. */
export function trailerHeaders(list: HeaderList): HeaderMap | Malformed {
  return toMap(list, NO_PSEUDO);
}

const STATUS_ONLY = new Set([':status']);
const NO_PSEUDO = new Set<string>();

/**
 * Header maps with no Object.prototype under them (a field named `__proto__` or `constructor` is just
 * a field), made by a constructor: V8 keeps such objects in fast mode, where Object.create(null) makes
 * them dictionaries, and every for-in over a dictionary sorts its keys again.
 */
const FieldMap = function FieldMap() {} as unknown as new () => HeaderMap;
FieldMap.prototype = Object.create(null);

/** An empty header map of the engine's kind. */
export function emptyHeaderMap(): HeaderMap {
  return new FieldMap();
}

function toMap(list: HeaderList, allowedPseudo: ReadonlySet<string>): HeaderMap | Malformed {
  const map = new FieldMap();
  let regularSeen = false;
  for (let i = 0; i < list.count; i++) {
    const name = list.names[i]!;
    const value = list.values[i]!;
    const checked = list.checked[i]!;
    if ((checked & FieldChecked.Name) === 0 && !validName(name)) return new Malformed(`field name ${JSON.stringify(name.slice(0, 64))} is not lower-case token characters`);
    if ((checked & FieldChecked.Value) === 0 && !validValue(value)) return new Malformed(`field ${name} has a value with NUL, CR, LF or surrounding whitespace`);
    if (name.charCodeAt(0) === 0x3a) {
      if (regularSeen) return new Malformed(`pseudo-header ${name} after a regular field`);
      if (!allowedPseudo.has(name)) return new Malformed(`pseudo-header ${name} is not allowed here`);
      if (map[name] !== undefined) return new Malformed(`pseudo-header ${name} twice`);
      map[name] = value;
      continue;
    }
    regularSeen = true;
    if (CONNECTION_SPECIFIC.has(name)) return new Malformed(`connection-specific field ${name}`);
    if (name === 'te' && value !== 'trailers') return new Malformed('te other than "trailers"');
    const previous = map[name];
    if (previous === undefined) map[name] = value;
    else if (Array.isArray(previous)) previous.push(value);
    else map[name] = [previous as string, value];
  }
  if (list.neverIndexed !== undefined) map[NEVER_INDEXED_FIELDS] = list.neverIndexed;
  return map;
}
