// The shipped example and the examples in docs/configuration.md must stay true.
// parseConfig, not loadConfig: their certificate paths do not exist here.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.ts';

const read = (relative: string) => readFile(new URL(`../../${relative}`, import.meta.url), 'utf8');

/** The first fenced block of `language` after `marker` in `text`. */
function blockAfter(text: string, marker: string, language: string): string {
  const start = text.indexOf(marker);
  assert.ok(start >= 0, `docs/configuration.md has no "${marker}"`);
  const block = new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\`\\n`).exec(text.slice(start));
  assert.ok(block, `no ${language} block after "${marker}"`);
  return block[1]!;
}

describe('examples', () => {
  it('examples/switchyard.yaml is a valid config', async () => {
    const config = parseConfig(await read('examples/switchyard.yaml'), 'examples/switchyard.yaml');
    assert.deepEqual(config.listeners.map((l) => [l.name, l.tls !== undefined, l.plaintext]), [['public', true, false], ['local', false, true]]);
    assert.deepEqual(config.clusters.map((c) => c.lb_policy), ['round_robin', 'peak_ewma', 'ring_hash']);
    const last = config.routes.at(-1);
    assert.deepEqual([last?.match.prefix, last?.direct_response?.code], ['/', 7]);
  });

  it('the docs show the example file as it is, and a valid minimal config', async () => {
    const docs = await read('docs/configuration.md');
    assert.equal(blockAfter(docs, '## Complete example', 'yaml'), await read('examples/switchyard.yaml'));
    const minimal = parseConfig(blockAfter(docs, '## Minimal example', 'yaml'), 'minimal.yaml');
    assert.equal(minimal.clusters[0]?.lb_policy, 'round_robin');
  });

  it('the docs show the error the loader really gives', async () => {
    const docs = await read('docs/configuration.md');
    const broken = blockAfter(docs, '<!-- broken-config -->', 'yaml');
    const expected = blockAfter(docs, '<!-- broken-config-error -->', 'text');
    assert.throws(() => parseConfig(broken, 'switchyard.yaml'), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(`${error.message}\n`, expected);
      return true;
    });
  });
});
