// Every YAML block in README.md and docs/*.md is a config the real loader
// accepts, so that what a reader copies works.
//
// How a block is checked:
// - a block with a key only the control plane has (`server`, `route_configs`, `limits`,
//   `debounce`, `authorization.identities`) is a control-plane config
//   (`switchyard control-plane`): whole with `server`, else a section of one, checked with
//   a placeholder `server` added;
// - a block with `listeners` is a whole proxy config and is checked as it stands;
// - any other block is a section of a proxy config: it is checked with what it leaves out
//   filled in, and nothing it says changed: a cleartext listener when it has none, a
//   static endpoint for each cluster without an endpoint source, and a cluster for each
//   route's cluster that it does not define;
// - a block right after `<!-- broken-config -->` is wrong on purpose: it must be refused;
// - a block right after `<!-- not-a-switchyard-config: what it is -->` (a Kubernetes
//   manifest, a pipeline step) is not checked. Keep these few.
// parseConfig, not loadConfig: the certificate paths in the docs do not exist here.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ConfigError, parseConfig, parseConfigObject, parseYamlConfig } from '../../src/config/load.ts';
import { controlPlaneSchema } from '../../src/xds/control-plane/control-plane-schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Blocks in docs this test's author could not edit when it was written, and so
 * could not mark: each should get its `<!-- not-a-switchyard-config: … -->`
 * the next time its doc is edited, and leave this list.
 */
const UNMARKED_EXCEPTIONS: readonly { file: string; firstLine: string; why: string }[] = [
  { file: 'docs/control-plane.md', firstLine: '- identity: spiffe://prod/node/node-7', why: 'one entry of authorization.identities' },
  { file: 'docs/control-plane.md', firstLine: '# DaemonSet: the agent', why: 'parts of Kubernetes pod specs' },
  { file: 'docs/kubernetes.md', firstLine: 'apiVersion: rbac.authorization.k8s.io/v1', why: 'a Kubernetes Role and RoleBinding' },
  { file: 'docs/observability.md', firstLine: '# deploy/overlays/production-monitored/kustomization.yaml (shipped as an example)', why: 'a kustomization' },
];

interface Block {
  readonly file: string;
  /** 1-based line of the block's first line of YAML. */
  readonly line: number;
  readonly text: string;
  /** The marker comment right before the opening fence, if any. */
  readonly marker: string | undefined;
}

async function yamlBlocks(): Promise<Block[]> {
  const docs = (await readdir(path.join(ROOT, 'docs'))).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`);
  const blocks: Block[] = [];
  for (const file of ['README.md', ...docs]) {
    const lines = (await readFile(path.join(ROOT, file), 'utf8')).split('\n');
    for (let i = 0; i < lines.length; i++) {
      // Fences may be indented, inside a list item; the block's lines then carry the same indent.
      const indent = /^( *)```ya?ml\s*$/.exec(lines[i]!)?.[1];
      if (indent === undefined) continue;
      const end = lines.findIndex((line, j) => j > i && line.startsWith(`${indent}\`\`\``) && line.trim() === '```');
      assert.ok(end > i, `${file}:${i + 1}: a yaml block that is never closed`);
      let before = i - 1;
      while (before >= 0 && lines[before]!.trim() === '') before--;
      const marker = /^<!--\s*(.*?)\s*-->$/.exec(lines[before]?.trim() ?? '')?.[1];
      const text = lines.slice(i + 1, end).map((line) => line.slice(indent.length)).join('\n') + '\n';
      blocks.push({ file, line: i + 2, text, marker });
      i = end;
    }
  }
  return blocks;
}

type Section = Record<string, unknown>;
const isRecord = (value: unknown): value is Section => typeof value === 'object' && value !== null && !Array.isArray(value);
const SOURCES = ['endpoints', 'dns', 'kubernetes'];
const PLACEHOLDER_ENDPOINTS = [{ address: '127.0.0.1', port: 50051 }];

/** A section of a proxy config with what it leaves out filled in (see the file's comment). */
function completed(section: Section): Section {
  const config: Section = { ...section };
  config.listeners ??= [{ name: 'docs-example', port: 0, plaintext: true }];
  const clusters = Array.isArray(config.clusters) ? config.clusters.map((c: unknown) => (isRecord(c) && !SOURCES.some((key) => key in c) ? { ...c, endpoints: PLACEHOLDER_ENDPOINTS } : c)) : [];
  const defined = new Set(clusters.map((c) => (isRecord(c) ? c.name : undefined)));
  for (const route of Array.isArray(config.routes) ? config.routes : []) {
    const name = isRecord(route) ? route.cluster : undefined;
    if (typeof name === 'string' && !defined.has(name)) {
      clusters.push({ name, endpoints: PLACEHOLDER_ENDPOINTS });
      defined.add(name);
    }
  }
  if (clusters.length > 0) config.clusters = clusters;
  return config;
}

const CONTROL_PLANE_ONLY = ['server', 'route_configs', 'limits', 'debounce'];
const isControlPlane = (value: Section) =>
  CONTROL_PLANE_ONLY.some((key) => key in value) || (isRecord(value.authorization) && 'identities' in value.authorization);
const PLACEHOLDER_SERVER = { port: 0, tls: { cert_file: 'control-plane.pem', key_file: 'control-plane-key.pem', client_ca_file: 'clients-ca.pem' } };

/** Throws the loader's ConfigError for a block that is not a valid config. */
function check(block: Block): void {
  const label = `${block.file}:${block.line}`;
  const value: unknown = parseYaml(block.text, { merge: true, uniqueKeys: true });
  if (isRecord(value) && 'server' in value) {
    parseYamlConfig(controlPlaneSchema, block.text, label, 'a control plane config needs at least server and authorization');
  } else if (isRecord(value) && isControlPlane(value)) {
    const result = controlPlaneSchema.safeParse({ server: PLACEHOLDER_SERVER, ...value });
    if (!result.success) throw new ConfigError(`${label} (a control-plane section, completed)`, result.error.issues.map((issue) => ({ path: issue.path.join('.') || '(root)', message: issue.message })));
  } else if (isRecord(value) && 'listeners' in value) {
    parseConfig(block.text, label);
  } else {
    assert.ok(isRecord(value), `${label}: neither a config nor a section of one (mark it <!-- not-a-switchyard-config: … -->)`);
    parseConfigObject(completed(value), `${label} (a section, completed)`);
  }
}

describe('the YAML in the docs', () => {
  it('every block is a valid config, a valid section of one, or marked as something else', async () => {
    const blocks = await yamlBlocks();
    assert.ok(blocks.length >= 25, `found only ${blocks.length} yaml blocks: is the extraction broken?`);
    const failures: string[] = [];
    let checked = 0;
    for (const block of blocks) {
      const firstLine = block.text.split('\n')[0]!;
      if (block.marker?.startsWith('not-a-switchyard-config:')) continue;
      if (UNMARKED_EXCEPTIONS.some((e) => e.file === block.file && e.firstLine === firstLine)) continue;
      if (block.marker === 'broken-config') {
        assert.throws(() => check(block), ConfigError, `${block.file}:${block.line} is marked broken-config but loads`);
        continue;
      }
      try {
        check(block);
        checked++;
      } catch (error) {
        failures.push(error instanceof ConfigError ? error.message : `${block.file}:${block.line}: ${String(error)}`);
      }
    }
    assert.deepEqual(failures, [], failures.join('\n\n'));
    assert.ok(checked >= 20, `only ${checked} blocks were checked`);
  });

  it('marks stay few, and each says what the block is', async () => {
    const marked = (await yamlBlocks()).filter((block) => block.marker?.startsWith('not-a-switchyard-config'));
    for (const block of marked) assert.match(block.marker!, /^not-a-switchyard-config: \S.{5,}/, `${block.file}:${block.line}: say what it is`);
    assert.ok(marked.length + UNMARKED_EXCEPTIONS.length <= 8, `${marked.length + UNMARKED_EXCEPTIONS.length} blocks are not checked; keep it few`);
  });

  it('the exceptions listed here still exist (remove them once their doc marks them)', async () => {
    const blocks = await yamlBlocks();
    for (const exception of UNMARKED_EXCEPTIONS) {
      const block = blocks.find((b) => b.file === exception.file && b.text.split('\n')[0] === exception.firstLine);
      assert.ok(block, `${exception.file}: no yaml block starts with "${exception.firstLine}"`);
      assert.ok(!block.marker?.startsWith('not-a-switchyard-config'), `${exception.file}:${block.line} is marked now: remove it from UNMARKED_EXCEPTIONS`);
    }
  });
});
