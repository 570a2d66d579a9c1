/**
 * Bundles the `switchyard` command into dist/bin/ (run by `npm run build`).
 *
 * Why a bundle: each of the ~140 files an unbundled proxy loads goes through
 * Node's ES-module loader, whose own code and the compiler pages it touches
 * stay resident: the same proxy idles about 7 MiB lower when it loads a few
 * dozen chunks instead (docs/performance.md, "Idle memory"). Code splitting
 * keeps each command's modules in chunks of their own, loaded by the dynamic
 * imports in src/cli/main.ts, so `run` never loads the control plane, the
 * agent, verify or the demo. Packages stay in node_modules, imported as they
 * are. Names are kept and nothing is minified: a stack trace reads like the
 * source.
 *
 * The output is ASCII. esbuild escapes non-ASCII characters in code, but keeps
 * some comments as they are (`§`, `≤`, `—`), and one such character makes V8
 * hold the whole chunk as a two-byte string, after Node has decoded it through
 * a staging buffer twice the file's size: 0.7 MiB more heap for the main
 * chunk, and a freed block that often leaves glibc's heap 1.2–1.7 MiB larger
 * for good. So those characters are written as `\u{…}` in the comments.
 *
 *   node build/bundle.ts [outdir]     default dist/bin
 */
import { build, transform } from 'esbuild';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Writes the command to `<outdir>/switchyard.js`, the config checker the proxy runs as a child
 * to `<outdir>/parse-process.js` (src/config/isolated-load.ts finds it beside its own chunk),
 * their shared chunks, and the files the code reads beside itself: the dashboard's page and
 * the demo's echo.proto.
 */
export async function bundleCli(outdir: string): Promise<void> {
  await rm(outdir, { recursive: true, force: true });
  const { outputFiles } = await build({
    absWorkingDir: ROOT,
    entryPoints: { switchyard: 'src/cli/main.ts', 'parse-process': 'src/config/parse-process.ts' },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    packages: 'external',
    charset: 'ascii',
    write: false,
    logLevel: 'warning',
  });
  await mkdir(outdir, { recursive: true });
  for (const file of outputFiles) await writeFile(file.path, await asciiOnly(file.text, file.path));
  await cp(path.join(ROOT, 'src/admin/dashboard'), path.join(outdir, 'dashboard'), { recursive: true });
  await cp(path.join(ROOT, 'src/demo/echo.proto'), path.join(outdir, 'echo.proto'));
}

/** `code` with every non-ASCII character of its comments written as `\u{…}`; throws if the code itself would change. */
export async function asciiOnly(code: string, file: string): Promise<string> {
  const ascii = code.replace(/[^\x00-\x7f]/gu, (char) => `\\u{${char.codePointAt(0)!.toString(16)}}`);
  if (ascii === code) return code;
  // Without comments and whitespace the two must print the same: only comments were touched.
  const bare = async (text: string) => (await transform(text, { minifyWhitespace: true, legalComments: 'none', charset: 'ascii' })).code;
  if ((await bare(code)) !== (await bare(ascii))) throw new Error(`${file}: non-ASCII characters outside comments`);
  return ascii;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await bundleCli(path.resolve(ROOT, process.argv[2] ?? 'dist/bin'));
}
