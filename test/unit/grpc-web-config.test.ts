/**
 * The browser protocols' config: listeners[].web, routes[].web and
 * web.descriptor_sets, each mistake named by file, path and line, and the
 * descriptor sets read and parsed at load.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { assertProblem, configError } from '../helpers/config-errors.ts';
import { writeEchoDescriptorSet } from '../helpers/web-clients.ts';

const LISTENER = 'listeners:\n  - name: web\n    port: 0\n    plaintext: true\n';

describe('browser protocols in the config', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'switchyard-web-config-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is off unless asked for: no protocols, no CORS, no descriptor sets', () => {
    const config = parseConfig(LISTENER, 'web.yaml');
    assert.deepEqual(config.listeners[0]!.web, { protocols: [] });
    assert.deepEqual(config.web, { descriptor_sets: [] });
  });

  it('names the path and line of each mistake', async () => {
    const text = `${LISTENER}    web:
      protocols: [grpc_web, grpcweb]
      cors:
        allow_origins: ["https://app.example.com/login", "*"]
        allow_credentials: true
routes:
  - match: { prefix: / }
    direct_response: { code: OK }
    web: { protocols: [connect, connect], cors: { allow_origins: [] } }
`;
    const error = await configError('web.yaml', () => parseConfig(text, 'web.yaml'));
    assertProblem(error, 'listeners[0].web.protocols[1]', 'expected one of "grpc_web", "connect", got "grpcweb"');
    assertProblem(error, 'listeners[0].web.cors.allow_origins[0]', /expected an origin such as "https:\/\/app.example.com"/);
    assertProblem(error, 'listeners[0].web.cors.allow_credentials', /browsers refuse credentials with allow_origins "\*"/);
    assertProblem(error, 'routes[0].web.protocols', 'a protocol is listed twice');
    assert.ok(error.problems.some((problem) => problem.path === 'routes[0].web.cors.allow_origins'), error.message);
    assert.ok(error.problems.every((problem) => problem.line !== undefined), 'every problem has its line');
  });

  it('reads and parses descriptor sets at load, relative to the config file', async () => {
    const set = await writeEchoDescriptorSet(dir);
    const file = path.join(dir, 'ok.yaml');
    await writeFile(file, `${LISTENER}web:\n  descriptor_sets: [${path.basename(set)}]\n`);
    const loaded = await loadConfig(file);
    assert.deepEqual(loaded.config.web.descriptor_sets, [set]);
    assert.ok(loaded.files.includes(set), 'a reload on change watches it');
    const unary = loaded.secrets.descriptors?.method('/switchyard.demo.v1.Echo/Unary');
    assert.ok(unary);
    assert.equal(loaded.secrets.descriptors?.serviceCount, 1);
    // The set has no json_name (protobufjs wrote it): filled as protoc would, delayMs for delay_ms.
    assert.deepEqual([...unary.requestToBinary(Buffer.from('{"delayMs": 3}'))], [0x10, 0x03]);
    assert.equal(loaded.secrets.descriptors?.method('/switchyard.demo.v1.Echo/Nope'), undefined);
  });

  it('refuses a descriptor set it cannot read, one that is not a FileDescriptorSet, and one without its imports', async () => {
    await writeFile(path.join(dir, 'junk.binpb'), Buffer.from('this is not protobuf at all \xff\xff\xff'));
    const missingImport = create(FileDescriptorSetSchema, {
      file: [{ name: 'a.proto', package: 'a', dependency: ['google/protobuf/timestamp.proto'], syntax: 'proto3', messageType: [{ name: 'A' }] }],
    });
    await writeFile(path.join(dir, 'partial.binpb'), toBinary(FileDescriptorSetSchema, missingImport));
    for (const [name, at, message] of [
      ['absent.binpb', 'web.descriptor_sets[0]', /cannot read ".*absent\.binpb"/],
      ['junk.binpb', 'web.descriptor_sets', /junk\.binpb" is not a FileDescriptorSet/],
      ['partial.binpb', 'web.descriptor_sets', /partial\.binpb".*timestamp\.proto.*--include_imports/],
    ] as const) {
      const file = path.join(dir, `${name}.yaml`);
      await writeFile(file, `${LISTENER}web:\n  descriptor_sets: [${name}]\n`);
      assertProblem(await configError(file, () => loadConfig(file)), at, message);
    }
  });
});
