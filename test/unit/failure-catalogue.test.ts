import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FAILURE_CODES } from '../../src/grpc/failures.ts';

describe('the failure catalogue', () => {
  it('docs/observability.md lists every code, and no code that does not exist', () => {
    const doc = readFileSync(new URL('../../docs/observability.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## The failure catalogue'), doc.indexOf('\n## ', doc.indexOf('## The failure catalogue') + 1));
    const documented = [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual([...documented].sort(), [...FAILURE_CODES].sort());
  });
});
