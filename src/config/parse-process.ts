/**
 * The child process of isolated-load.ts: reads, parses and validates the config
 * file its argument names and writes the outcome (the config, or the problems)
 * to stdout with v8.serialize, exiting 0 either way. Anything unexpected exits
 * non-zero with the reason on stderr.
 */
import { serialize } from 'node:v8';
import { ConfigError, parseConfig, readConfigText } from './load.ts';
import type { ParseOutcome } from './isolated-load.ts';

const file = process.argv[2]!;
let outcome: ParseOutcome;
try {
  outcome = { config: parseConfig(await readConfigText(file), file) };
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  outcome = { problems: error.problems };
}
process.stdout.write(serialize(outcome));
