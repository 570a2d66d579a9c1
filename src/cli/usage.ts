/** Command-line usage errors, shared by the subcommands that parse options of their own. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Bad usage: the command prints the message (and its usage) and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** node:util's parseArgs, with its errors (an unknown or malformed option) as UsageError. */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
