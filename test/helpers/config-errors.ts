/** Assertions on ConfigError, shared by the config tests. */
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/load.ts';

/** Runs `fn`, which must throw a ConfigError for `file`, and returns it. */
export async function configError(file: string, fn: () => unknown): Promise<ConfigError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'SWITCHYARD_BAD_CONFIG');
    assert.equal(error.file, file);
    assert.ok(error.message.startsWith(`${file}: invalid config\n`), error.message);
    assert.ok(error.problems.length > 0);
    return error;
  }
  assert.fail('expected a ConfigError, but nothing was thrown');
}

/**
 * Asserts that `error` has a problem at exactly `path` whose message matches,
 * and that the problem appears as its own line of the error's message.
 */
export function assertProblem(error: ConfigError, path: string, message: string | RegExp): void {
  const atPath = error.problems.filter((p) => p.path === path);
  assert.ok(atPath.length > 0, `no problem at ${path}; problems:\n${error.message}`);
  const matches = (text: string) => (typeof message === 'string' ? text === message : message.test(text));
  const problem = atPath.find((p) => matches(p.message));
  assert.ok(problem, `no problem at ${path} matching ${String(message)}; problems:\n${error.message}`);
  assert.ok(error.message.split('\n').some((line) => line.startsWith(`  ${path}: ${problem.message}`)), error.message);
}
