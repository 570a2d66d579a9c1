/**
 * The folders of src/ depend on each other one way, along the edges written
 * once in docs/architecture.md ("Folder dependencies"): an import outside
 * them, or an import cycle between any two files, fails here. Imports are read
 * from the sources (static, `export … from` and dynamic `import()`), type-only
 * ones included: they couple folders as much as any other.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const DOC = fileURLToPath(new URL('../../docs/architecture.md', import.meta.url));
const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^;'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** A file's part: its top folder under src/, or the file itself for the files at the top. */
function partOf(relative: string): string {
  return relative.split('/')[0]!;
}

/** Every relative import of every file: file → files, relative to src/. */
function importGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of sourceFiles(SRC)) {
    const from = path.relative(SRC, file);
    const targets = new Set<string>();
    for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      targets.add(path.relative(SRC, path.resolve(path.dirname(file), match[1] ?? match[2]!)));
    }
    graph.set(from, targets);
  }
  return graph;
}

/** The allowed part → parts edges, from the table in docs/architecture.md. */
function allowedEdges(): Map<string, Set<string>> {
  const doc = readFileSync(DOC, 'utf8');
  const start = doc.indexOf('## Folder dependencies');
  assert.ok(start >= 0, 'docs/architecture.md has a "Folder dependencies" section');
  const section = doc.slice(start, doc.indexOf('\n## ', start + 1));
  const allowed = new Map<string, Set<string>>();
  for (const row of section.matchAll(/^\| `([^`]+)` \|([^|]*)\|/gm)) {
    allowed.set(row[1]!, new Set([...row[2]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)));
  }
  return allowed;
}

/** Strongly connected components with more than one node: the cycles. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (node: string): void => {
    index.set(node, next);
    low.set(node, next++);
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1) found.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

describe('architecture', () => {
  const files = importGraph();
  const parts = new Map<string, Set<string>>();
  for (const [from, targets] of files) {
    for (const target of targets) {
      const [a, b] = [partOf(from), partOf(target)];
      if (a === b) continue;
      if (!parts.has(a)) parts.set(a, new Set());
      parts.get(a)!.add(b);
    }
  }

  it('every import between folders is an edge docs/architecture.md allows', () => {
    const allowed = allowedEdges();
    const outside: string[] = [];
    for (const [from, targets] of files) {
      for (const target of targets) {
        const [a, b] = [partOf(from), partOf(target)];
        if (a !== b && !allowed.get(a)?.has(b)) outside.push(`${from} imports ${target} (${a} → ${b})`);
      }
    }
    assert.deepEqual(outside, []);
  });

  it('every part of src/ is in the table, and the table names no part that does not exist', () => {
    const allowed = allowedEdges();
    const actual = new Set([...files.keys()].map(partOf));
    assert.deepEqual([...allowed.keys()].sort(), [...actual].sort());
  });

  it('no import cycle between folders', () => {
    assert.deepEqual(cycles(parts), []);
  });

  it('no import cycle between files', () => {
    assert.deepEqual(cycles(files), []);
  });

  it('the checks can fail: a cycle and an edge outside the table are found', () => {
    const sample = new Map([['a.ts', new Set(['b.ts'])], ['b.ts', new Set(['a.ts'])], ['c.ts', new Set<string>()]]);
    assert.deepEqual(cycles(sample), [['a.ts', 'b.ts']]);
    assert.equal(allowedEdges().get('grpc')?.has('proxy'), false, 'the vocabulary may not import the RPC path');
  });
});
