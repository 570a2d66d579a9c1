/**
 * Strings a client sends (node.id, node.cluster, user_agent_name, a NACK's
 * message, a type URL) are clipped before they reach a log line, a status
 * message or a hook: a client may send megabytes in one field, and a log
 * that copies them verbatim is a way to fill a disk. Used by the control
 * plane and the agent; imports nothing, so the agent stays small.
 */

/** Long enough for any real node id or SPIFFE ID, short enough that a flood of refusals stays small. */
export const MAX_LOGGED_CHARS = 256;

/** `value` when it is at most `max` characters, else its start and how long it was. */
export function clip(value: string, max = MAX_LOGGED_CHARS): string {
  if (value.length <= max) return value;
  return `${value.slice(0, max)}…(${value.length} chars)`;
}

/** clip() for a value that may be missing. */
export function clipOptional(value: string | undefined, max = MAX_LOGGED_CHARS): string | undefined {
  return value === undefined ? undefined : clip(value, max);
}
