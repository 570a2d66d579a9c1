/**
 * The size of a header list as HTTP/2 counts it for SETTINGS_MAX_HEADER_LIST_SIZE
 * (RFC 9113 §6.5.2): each field's name and value in octets, plus 32. Header
 * objects join repeated fields with ", ", which makes the figure a few octets
 * larger than the wire's at most.
 */
export function headerListSize(headers: Readonly<Record<string, string | string[] | number | undefined>>): number {
  let size = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      for (const item of value) size += name.length + Buffer.byteLength(item) + 32;
    } else {
      size += name.length + (typeof value === 'string' ? Buffer.byteLength(value) : String(value).length) + 32;
    }
  }
  return size;
}
