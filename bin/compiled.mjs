// Whether the compiled copy of the code (dist/, written by `npm run build`) can run in place of
// the TypeScript sources: it exists and no source file changed after it was built. Plain
// JavaScript, so the launcher can ask before any TypeScript loader is registered.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Written last by the build, so its time is when the build finished. */
export const BUILD_STAMP = 'BUILD';

/** What the compiled code depends on besides `src/`. */
const BUILD_INPUTS = ['tsconfig.json', 'tsconfig.build.json', 'package.json'];

/**
 * The compiled CLI's entry URL when `root/<outDir>` is a finished build newer than every source
 * file; otherwise the reason it is not used.
 * @param {string} root the package root
 * @param {string} [outDir] the build's directory under root
 * @returns {{ entry: URL } | { reason: string }}
 */
export function compiledEntry(root, outDir = 'dist') {
  let builtAt;
  try {
    builtAt = statSync(join(root, outDir, BUILD_STAMP)).mtimeMs;
  } catch {
    return { reason: `not built (no ${outDir}/${BUILD_STAMP}; npm run build writes it)` };
  }
  const newer = newestSource(root);
  if (newer && newer.mtimeMs > builtAt) {
    return { reason: `${newer.file} changed after the build` };
  }
  return { entry: pathToFileURL(join(root, outDir, 'cli', 'main.js')) };
}

/** The most recently changed TypeScript source or build input. */
function newestSource(root) {
  let newest;
  const consider = (file) => {
    let mtimeMs;
    try {
      mtimeMs = statSync(join(root, file)).mtimeMs;
    } catch {
      return;
    }
    if (!newest || mtimeMs > newest.mtimeMs) newest = { file, mtimeMs };
  };
  for (const file of BUILD_INPUTS) consider(file);
  for (const entry of readdirSync(join(root, 'src'), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !/\.(ts|tsx|mts)$/.test(entry.name) || entry.name.endsWith('.d.ts')) {
      continue;
    }
    const dir = entry.parentPath ?? entry.path;
    consider(relative(root, join(dir, entry.name)));
  }
  return newest;
}
