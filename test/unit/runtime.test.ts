import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };

it('runs on the Node.js LTS pinned in package.json, not the machine default', () => {
  assert.equal(process.versions.node, pkg.dependencies.node);
  assert.ok(Number(process.versions.node.split('.')[0]) >= 24, `Node ${process.versions.node} is older than 24`);
});

it('has an HTTP/2 stack that can tune rapid-reset limits (Node >= 22.10)', () => {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  assert.ok(major > 22 || (major === 22 && minor >= 10));
  assert.ok(process.versions.nghttp2, 'nghttp2 version is reported');
});
