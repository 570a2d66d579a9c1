/** A bad `websocket` section fails at load, naming the file, the path and what was expected. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { assertProblem, configError } from '../helpers/config-errors.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-ws-config-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const BASE = `
listeners:
  - { name: public, port: 8080, plaintext: true }
clusters:
  - { name: chat, lb_policy: least_connections, endpoints: [{ address: 10.0.0.1, port: 8080 }] }
`;

describe('the websocket section', () => {
  it('has defaults for everything but the routes, and each listener a websocket block', () => {
    const config = parseConfig(`${BASE}websocket:\n  routes:\n    - { match: { prefix: /ws }, cluster: chat }\n`, 'ok.yaml');
    const route = config.websocket.routes[0]!;
    assert.deepEqual([route.upgrades, route.forward_requests, route.idle_timeout, route.ping_interval, route.close_timeout, route.max_frame_bytes], [true, false, 3_600_000, 30_000, 5_000, 16 << 20]);
    assert.deepEqual(config.listeners[0]!.websocket, { over_http2: true });
    assert.equal(config.clusters[0]!.lb_policy, 'least_connections');
  });

  it('names every problem by its path and line', async () => {
    const error = await configError('bad.yaml', () => parseConfig(`${BASE}websocket:
  routes:
    - match: { prefix: /a, path: /b }
      cluster: chat
    - match: { prefix: ws }
      cluster: nowhere
      allowed_origins: [chat.example.com]
      max_frame_bytes: 2000
      max_message_bytes: 1000
    - match: { prefix: /c }
      cluster: chat
      affinity: { cookie: { same_site: None, secure: false } }
`, 'bad.yaml'));
    assertProblem(error, 'websocket.routes[0].match', /exactly one of path \(exact\) or prefix/);
    assertProblem(error, 'websocket.routes[1].match.prefix', /starting with "\/"/);
    assertProblem(error, 'websocket.routes[1].cluster', 'no cluster named "nowhere" (clusters: chat)');
    assertProblem(error, 'websocket.routes[1].allowed_origins[0]', /expected an origin/);
    assertProblem(error, 'websocket.routes[1].max_frame_bytes', /cannot exceed max_message_bytes/);
    assertProblem(error, 'websocket.routes[2].affinity.cookie.secure', /same_site: None needs secure: true/);
    assertProblem(error, 'websocket.routes[2].affinity', /needs websocket.affinity_key_file/);
    assert.ok(error.problems.every((problem) => problem.line !== undefined), error.message);
  });

  it('reads the affinity key at load, and refuses a short or missing one', async () => {
    const good = path.join(dir, 'good.key');
    await writeFile(good, `${'k'.repeat(40)}\n`);
    const short = path.join(dir, 'short.key');
    await writeFile(short, 'too short\n');
    const withKey = (key: string) => `${BASE}websocket:\n  affinity_key_file: ${key}\n  routes:\n    - { match: { prefix: / }, cluster: chat, affinity: {} }\n`;
    const file = path.join(dir, 'ok.yaml');
    await writeFile(file, withKey('good.key'));
    const loaded = await loadConfig(file);
    assert.equal(loaded.secrets.affinityKey?.toString(), 'k'.repeat(40));
    assert.ok(loaded.files.includes(good), 'the key file is watched with the rest');
    for (const [name, message] of [['short.key', /holds 9 bytes of key; an affinity key needs 32 or more/], ['missing.key', /cannot read/]] as const) {
      const bad = path.join(dir, `bad-${name}.yaml`);
      await writeFile(bad, withKey(name));
      assertProblem(await configError(bad, () => loadConfig(bad)), 'websocket.affinity_key_file', message);
    }
  });
});
