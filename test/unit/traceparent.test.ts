import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from '../../src/tracing/traceparent.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${PARENT_ID}-01`;

describe('parseTraceparent', () => {
  it('reads the four fields of a version-00 value', () => {
    assert.deepEqual(parseTraceparent(VALID), { traceId: TRACE_ID, parentId: PARENT_ID, flags: 1 });
    assert.deepEqual(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-00`), { traceId: TRACE_ID, parentId: PARENT_ID, flags: 0 });
    // Flags other than sampled are kept as they came.
    assert.equal(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-ff`)?.flags, 0xff);
  });

  it('finds nothing in a missing, repeated or non-string header', () => {
    assert.equal(parseTraceparent(undefined), undefined);
    assert.equal(parseTraceparent(''), undefined);
    assert.equal(parseTraceparent([VALID, VALID]), undefined);
    // Node joins repeated headers with ", ".
    assert.equal(parseTraceparent(`${VALID}, ${VALID}`), undefined);
  });

  it('rejects version 00 values of the wrong length or shape', () => {
    const invalid = [
      VALID.slice(0, -1),
      `${VALID}-`,
      `${VALID}-extra`,
      ` ${VALID}`,
      `00_${TRACE_ID}-${PARENT_ID}-01`,
      `00-${TRACE_ID}_${PARENT_ID}-01`,
      `00-${TRACE_ID}-${PARENT_ID}_01`,
      `00-${TRACE_ID.slice(1)}-${PARENT_ID}0-01`,
      `00-${TRACE_ID}-${PARENT_ID.slice(1)}-001`,
      'not a traceparent at all, though it is fifty-five long',
    ];
    for (const value of invalid) assert.equal(parseTraceparent(value), undefined, value);
  });

  it('rejects uppercase and non-hex characters in every field', () => {
    const invalid = [
      `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-00F067AA0BA902B7-01`,
      `00-${TRACE_ID}-${PARENT_ID}-0A`,
      `0A-${TRACE_ID}-${PARENT_ID}-01`,
      `00-${TRACE_ID.replace('4', 'g')}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${PARENT_ID.replace('f', 'x')}-01`,
      `00-${TRACE_ID}-${PARENT_ID}-0g`,
      `.0-${TRACE_ID}-${PARENT_ID}-01`,
    ];
    for (const value of invalid) assert.equal(parseTraceparent(value), undefined, value);
  });

  it('rejects the all-zero trace id and parent id', () => {
    assert.equal(parseTraceparent(`00-${'0'.repeat(32)}-${PARENT_ID}-01`), undefined);
    assert.equal(parseTraceparent(`00-${TRACE_ID}-${'0'.repeat(16)}-01`), undefined);
  });

  it('rejects version ff', () => {
    assert.equal(parseTraceparent(`ff-${TRACE_ID}-${PARENT_ID}-01`), undefined);
  });

  it('reads the first four fields of a later version, which may carry more after a dash', () => {
    const expected = { traceId: TRACE_ID, parentId: PARENT_ID, flags: 1 };
    assert.deepEqual(parseTraceparent(`01-${TRACE_ID}-${PARENT_ID}-01`), expected);
    assert.deepEqual(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-01-what-the-future-holds`), expected);
    assert.deepEqual(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-01-`), expected);
    // Shorter than version 00, or not followed by a dash: not parsable.
    assert.equal(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-1`), undefined);
    assert.equal(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-01.what-the-future-holds`), undefined);
    assert.equal(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-0100`), undefined);
    // The known fields of a later version are checked like version 00's.
    assert.equal(parseTraceparent(`cc-${'0'.repeat(32)}-${PARENT_ID}-01-x`), undefined);
    assert.equal(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID.toUpperCase()}-01-x`), undefined);
  });
});

describe('formatTraceparent', () => {
  it('writes version 00 with two-digit flags', () => {
    assert.equal(formatTraceparent(TRACE_ID, PARENT_ID, 1), VALID);
    assert.equal(formatTraceparent(TRACE_ID, PARENT_ID, 0), `00-${TRACE_ID}-${PARENT_ID}-00`);
    assert.equal(formatTraceparent(TRACE_ID, PARENT_ID, 0x0a), `00-${TRACE_ID}-${PARENT_ID}-0a`);
    assert.equal(formatTraceparent(TRACE_ID, PARENT_ID, 0xff), `00-${TRACE_ID}-${PARENT_ID}-ff`);
  });

  it('round-trips through parseTraceparent', () => {
    for (const flags of [0, 1, 2, 3, 0x80, 0xff]) {
      const traceId = newTraceId();
      const parentId = newSpanId();
      assert.deepEqual(parseTraceparent(formatTraceparent(traceId, parentId, flags)), { traceId, parentId, flags });
    }
  });
});

describe('new ids', () => {
  it('are lowercase hex of the right length, and differ', () => {
    const traceIds = new Set(Array.from({ length: 100 }, newTraceId));
    const spanIds = new Set(Array.from({ length: 100 }, newSpanId));
    assert.equal(traceIds.size, 100);
    assert.equal(spanIds.size, 100);
    for (const id of traceIds) assert.match(id, /^[0-9a-f]{32}$/);
    for (const id of spanIds) assert.match(id, /^[0-9a-f]{16}$/);
  });
});
