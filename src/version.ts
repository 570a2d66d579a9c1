/**
 * The package's version, read once from its package.json. Found by the package's own name (its
 * exports list ./package.json), so the same line works from src/, dist/ and the bundle in dist/bin/.
 */
import { createRequire } from 'node:module';

export const VERSION: string = (createRequire(import.meta.url)('switchyard/package.json') as { version: string }).version;
