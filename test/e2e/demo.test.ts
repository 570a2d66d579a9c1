import { it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { runDemo } from '../../src/demo/demo.ts';

it('the demo shows one backend taking all L4 traffic and Switchyard spreading it evenly', async () => {
  const output = new PassThrough();
  let text = '';
  output.on('data', (chunk: Buffer) => { text += chunk.toString(); });
  await runDemo({ durationMs: 1_500, output });
  // The last table printed is the final one.
  const finalTable = text.slice(text.lastIndexOf('L4, per connection'));
  const [l4, switchyard] = finalTable.split('Switchyard, per RPC') as [string, string];
  const shares = (block: string) => [...block.matchAll(/backend-\d\s+\S+\s+([\d.]+)%/g)].map((m) => Number(m[1]));
  assert.deepEqual(shares(l4).sort((a, b) => b - a), [100, 0, 0], finalTable);
  for (const share of shares(switchyard)) assert.ok(Math.abs(share - 33.3) < 2, finalTable);
  assert.match(text, /live dashboard: http:\/\/127\.0\.0\.1:\d+\/dashboard/);
});
