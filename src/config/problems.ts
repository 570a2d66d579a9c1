/**
 * Turns zod issues into config problems a person can act on: a path written
 * the way it looks in the file (`clusters[0].endpoints[1].port`) and a short
 * message that says what was expected and what was found.
 */
import type { z } from 'zod';

/** One thing wrong with a config. */
export interface ConfigProblem {
  /** Where: `routes[2].match.method`, `(root)` for the whole document, `(file)` for the file itself, or `line L, column C` for YAML syntax. */
  readonly path: string;
  readonly message: string;
  /** 1-based position in the YAML file, when the problem can be traced to one. */
  readonly line?: number;
  readonly column?: number;
}

/** A problem whose path is still a list of keys, before it is located in a file and formatted. */
export interface RawProblem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** For unknown keys: the key itself, so the problem can point at its line. */
  readonly key?: string;
}

/** `['routes', 2, 'match', 'method']` → `routes[2].match.method`; `[]` → `(root)`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Validates `value` and returns its problems, all of them. The error map only
 * fills in messages the schema did not write itself: zod gives schema-level
 * messages precedence over a per-parse map.
 */
export function validate<S extends z.ZodType>(schema: S, value: unknown): { data: z.output<S> } | { problems: RawProblem[] } {
  const result = schema.safeParse(value, { error: messageFor });
  if (result.success) return { data: result.data };
  return { problems: result.error.issues.flatMap((issue) => toProblems(issue, schema)) };
}

function toProblems(issue: z.core.$ZodIssue, schema: z.ZodType): RawProblem[] {
  if (issue.code !== 'unrecognized_keys') return [{ path: issue.path, message: issue.message }];
  const allowed = objectKeysAt(schema, issue.path);
  return issue.keys.map((key) => ({ path: issue.path, key, message: `unknown key "${key}"${hint(key, allowed)}` }));
}

function messageFor(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return `required (expected ${article(issue.expected)})`;
      if (issue.expected === 'int') return `expected an integer, got ${typeof issue.input === 'number' ? issue.input : typeName(issue.input)}`;
      return `expected ${issue.expected}, got ${typeName(issue.input)}`;
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = small ? issue.minimum : issue.maximum;
      const op = small ? (issue.inclusive === false ? '>' : '>=') : (issue.inclusive === false ? '<' : '<=');
      if (issue.origin === 'string') return small && bound === 1 ? 'must not be empty' : `expected a string of length ${op} ${bound}`;
      if (issue.origin === 'array') return small ? `expected at least ${bound} ${bound === 1 ? 'entry' : 'entries'}` : `expected at most ${bound} entries`;
      return `expected a number ${op} ${bound}, got ${String(issue.input)}`;
    }
    case 'invalid_value':
      return `expected ${issue.values.length > 1 ? 'one of ' : ''}${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${show(issue.input)}`;
    case 'invalid_format':
      return issue.format === 'starts_with' ? `expected a string starting with "${String(issue['prefix'])}"` : `expected a ${issue.format} string, got ${show(issue.input)}`;
    case 'invalid_union':
      return unionMessage(issue.errors, issue.input);
    default:
      return undefined;
  }
}

/** A union failed: if one branch accepted the type but not the value, its complaint is the useful one. */
function unionMessage(branches: readonly (readonly z.core.$ZodIssue[])[], input: unknown): string {
  const typed = branches.find((issues) => issues.every((i) => i.path.length > 0 || i.code !== 'invalid_type'));
  if (typed?.[0]) return typed[0].path.length ? `${formatPath(typed[0].path)}: ${typed[0].message}` : typed[0].message;
  const expected = branches.flatMap((issues) => issues.flatMap((i) => (i.code === 'invalid_type' ? [i.expected] : [])));
  return `expected ${[...new Set(expected)].join(' or ')}, got ${typeName(input)}`;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value === 'object' && value !== null ? typeName(value) : String(value);
}

function article(expected: string): string {
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

/** ` (did you mean "port"?)` for a near miss, else the keys that are allowed there. */
function hint(key: string, allowed: readonly string[] | undefined): string {
  if (!allowed?.length) return '';
  // "ca" for "ca_file", "cert" for "cert_file": a shortened name is the likeliest slip.
  const longer = allowed.filter((k) => k.startsWith(key));
  if (longer.length === 1) return ` (did you mean "${longer[0]}"?)`;
  const best = allowed.map((k) => ({ k, d: editDistance(key, k) })).sort((a, b) => a.d - b.d)[0]!;
  if (best.d <= (key.length <= 3 ? 1 : 2)) return ` (did you mean "${best.k}"?)`;
  return ` (allowed: ${allowed.join(', ')})`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}

/** The keys the object schema at `path` accepts, found by walking the schema the way the value was walked. */
function objectKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | undefined {
  let node: z.core.$ZodType | undefined = schema;
  for (let i = 0; node !== undefined; ) {
    const def = node._zod.def as unknown as Record<string, unknown> & { type: string };
    switch (def.type) {
      case 'optional': case 'default': case 'prefault': case 'nullable': case 'readonly': case 'catch':
        node = def['innerType'] as z.core.$ZodType;
        continue;
      case 'pipe':
        node = def['in'] as z.core.$ZodType;
        continue;
    }
    if (i === path.length) return def.type === 'object' ? Object.keys(def['shape'] as object) : undefined;
    const key = path[i++];
    if (def.type === 'array' && typeof key === 'number') node = def['element'] as z.core.$ZodType;
    else if (def.type === 'object' && typeof key === 'string') node = (def['shape'] as Record<string, z.core.$ZodType>)[key];
    else return undefined;
  }
  return undefined;
}
