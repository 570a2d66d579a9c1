/**
 * What RFC 9113 §8.2.1 asks of one field's characters: a name of lower-case token characters (or
 * a pseudo-header's leading colon), a value without NUL, CR or LF or surrounding whitespace.
 * The HPACK decoder checks a field as it enters the dynamic table, so a field the peer indexes is
 * checked once, not in every header block that refers to it; header-rules.ts checks the rest.
 */

/** Bits of what is known valid of a decoded field. */
export const FieldChecked = { None: 0, Name: 1, Value: 2, Both: 3 } as const;

/** The FieldChecked bits of `name` and `value`. */
export function checkField(name: string, value: string): number {
  return (validName(name) ? FieldChecked.Name : 0) | (validValue(value) ? FieldChecked.Value : 0);
}

/** Lower-case token characters (RFC 9110 §5.6.2), or a leading colon for a pseudo-header. */
export function validName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = name.charCodeAt(0) === 0x3a ? 1 : 0; i < name.length; i++) {
    if (!TOKEN[name.charCodeAt(i)]) return false;
  }
  return true;
}

export function validValue(value: string): boolean {
  if (value.length === 0) return true;
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x00 || c === 0x0a || c === 0x0d) return false;
  }
  return true;
}

/** tchar, without the upper-case letters HTTP/2 forbids in field names. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") TOKEN[c.charCodeAt(0)] = 1;
