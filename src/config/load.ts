/**
 * Loading a config: YAML text → validated SwitchyardConfig → the PEM files it
 * names, read and checked (config-files.ts). Every step reports all of its
 * problems at once, each with the path of the offending field, in one
 * ConfigError.
 */
import path from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml';
import { formatPath, validate, type ConfigProblem, type RawProblem } from './problems.ts';
import type { z } from 'zod';
import { configSchema, type SwitchyardConfig } from './schema.ts';
import { ConfigError, readConfigText, readReferencedFiles, type LoadedConfig } from './config-files.ts';

export {
  ConfigError, PemFiles, readConfigText, resolveConfig, type ClusterTlsFiles, type ConfigProblem, type ConfigSecrets, type ListenerTlsFiles,
  type LoadedConfig, type XdsTlsFiles,
} from './config-files.ts';

/**
 * Parses and validates YAML config text. `file` only labels errors. Throws
 * ConfigError for YAML syntax errors (duplicate keys included), an empty
 * document, and every schema problem, each located by path and line.
 */
export function parseConfig(text: string, file: string): SwitchyardConfig {
  return parseYamlConfig(configSchema, text, file, 'a config needs at least one listener');
}

/**
 * parseConfig for any config schema (the control plane has its own): YAML
 * syntax, an empty document, and every schema problem, located by path and line.
 */
export function parseYamlConfig<S extends z.ZodType>(schema: S, text: string, file: string, emptyHint: string): z.output<S> {
  const lines = new LineCounter();
  // merge: true so `<<: *anchor` can share a block, e.g. one upstream tls section between clusters.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((error) => {
      const { line, col } = lines.linePos(error.pos[0]);
      const message = error.code === 'DUPLICATE_KEY' ? duplicateKeyMessage(text, error.pos[0]) : error.message.split('\n')[0]!;
      return { path: `line ${line}, column ${col}`, message, line, column: col };
    }));
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    if (!(error instanceof ReferenceError) || !/alias/i.test(error.message)) throw error;
    throw new ConfigError(file, [aliasBombProblem(doc, lines)]);
  }
  if (value === null || value === undefined) {
    throw new ConfigError(file, [{ path: '(file)', message: `the file is empty (or only comments); ${emptyHint}` }]);
  }
  const result = validate(schema, value);
  if ('data' in result) return result.data;
  const located = result.problems.map((problem) => ({ ...problem, ...position(doc, lines, problem) }));
  // Stable: problems on one line keep zod's order.
  located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  throw new ConfigError(file, located.map(({ path: keys, message, line, column }) => ({ path: formatPath(keys), message, line, column })));
}

/**
 * Validates a config built in code (the demo, tests) exactly as parseConfig
 * validates a file. `file` only labels errors, e.g. "(embedded demo config)".
 */
export function parseConfigObject(value: unknown, file: string): SwitchyardConfig {
  const result = validate(configSchema, value);
  if ('data' in result) return result.data;
  throw new ConfigError(file, result.problems.map((p) => ({ path: formatPath(p.path), message: p.message })));
}

/**
 * Reads, parses and validates a config file, then reads and checks every file
 * it names (see resolveConfig). Throws ConfigError for all of it, the file's
 * own unreadability included.
 */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  const absolute = path.resolve(file);
  const text = await readConfigText(file);
  const loaded = await readReferencedFiles(parseConfig(text, file), path.dirname(absolute), file);
  return { ...loaded, file: absolute, files: [absolute, ...loaded.files] };
}


/**
 * yaml's own default, stated here because the docs quote it: an anchor whose
 * node holds aliases may be used only while (uses × aliases inside) stays
 * under this. Leaf anchors (a shared tls block) may be used any number of
 * times; nested ones, which multiply (a "billion laughs" document), may not.
 */
const MAX_ALIAS_COUNT = 100;

/** yaml throws a bare ReferenceError for it; this says what happened and where the first alias is. */
function aliasBombProblem(doc: Document, lines: LineCounter): ConfigProblem {
  let offset: number | undefined;
  visit(doc, {
    Alias(_key, node) {
      offset = node.range?.[0];
      return visit.BREAK;
    },
  });
  const where = offset === undefined ? {} : (({ line, col }) => ({ line, column: col }))(lines.linePos(offset));
  return {
    path: '(file)',
    message: `the anchors and aliases expand to too much data (an anchor that holds aliases is used so often that uses × aliases inside exceed ${MAX_ALIAS_COUNT}, as in a "billion laughs" document); write the repeated parts out or nest fewer aliases`,
    ...where,
  };
}

/** yaml's own message does not say which key; the error points at its first character. */
function duplicateKeyMessage(text: string, offset: number): string {
  const key = /^("[^"\n]*"|'[^'\n]*'|[^:#\n]+?)\s*:/.exec(text.slice(offset))?.[1];
  return key === undefined ? 'duplicate key' : `duplicate key ${key.startsWith('"') ? key : JSON.stringify(key.replace(/^'|'$/g, ''))}`;
}


/** Where a problem is in the YAML: the node at its path, or the deepest existing parent of a missing one. */
function position(doc: Document, lines: LineCounter, problem: RawProblem): { line?: number; column?: number } {
  let node: unknown = doc.contents;
  let offset: number | undefined = rangeStart(node);
  const keys = problem.key === undefined ? problem.path : [...problem.path, problem.key];
  for (const [depth, key] of keys.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => (isScalar(item.key) ? String(item.key.value) : item.key) === key);
      // Point at the key for an unknown key or an empty value, at the value otherwise.
      const unknownKey = problem.key !== undefined && depth === keys.length - 1;
      if (pair) next = unknownKey || rangeStart(pair.value) === undefined ? pair.key : pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      next = node.items[key];
    }
    const start = rangeStart(next);
    if (start === undefined) break;
    node = next;
    offset = start;
  }
  if (offset === undefined) return {};
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}

function rangeStart(node: unknown): number | undefined {
  return (node as YamlNode | null | undefined)?.range?.[0];
}
