/** The HPACK static table (RFC 7541 Appendix A): index 1..61. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  ['', ''], // index 0 is not used
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

export const STATIC_TABLE_LENGTH = STATIC_TABLE.length - 1;

/** Index of each exact (name, value) pair: by name, then value (two lookups, no string built per field). */
export const STATIC_PAIRS: ReadonlyMap<string, ReadonlyMap<string, number>> = (() => {
  const pairs = new Map<string, Map<string, number>>();
  STATIC_TABLE.forEach(([name, value], index) => {
    if (index === 0) return;
    let values = pairs.get(name);
    if (!values) pairs.set(name, (values = new Map()));
    if (!values.has(value)) values.set(value, index);
  });
  return pairs;
})();

/** Index of the first entry with each name. */
export const STATIC_NAMES: ReadonlyMap<string, number> = new Map(STATIC_TABLE.slice(1).map(([name], i) => [name, i + 1]).reverse() as [string, number][]);
