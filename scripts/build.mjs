#!/usr/bin/env node
// Compiles src/ to dist/ (`npm run build`; `npm install` runs it as `prepare`), so the CLI and
// the media node start without the TypeScript loader: measured here, about 40 % sooner and with
// about 40 MB less memory. The pages and SQL migrations are not compiled: they are read from
// src/ either way.
//
// The build goes to a scratch directory and replaces dist/ only when complete, with BUILD
// written last: bin/returncam uses dist/ only while BUILD is newer than every source file.
// Without TypeScript (a production install, `npm ci --omit=dev`) it leaves dist/ as it is.
//
// Usage: node scripts/build.mjs [--out DIR]   (DIR one level under the package root)
import { execFileSync } from 'node:child_process';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILD_STAMP } from '../bin/compiled.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const out = resolve(root, outIndex >= 0 ? (args[outIndex + 1] ?? '') : 'dist');
if (dirname(out) !== resolve(root) || basename(out).startsWith('src')) {
  console.error(
    `build: --out must name a directory directly under ${root} (the code finds its files from there), got ${out}`,
  );
  process.exit(2);
}

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  console.log('build: TypeScript is not installed (a production install); dist/ is left as it is');
  process.exit(0);
}

const scratch = `${out}.partial`;
rmSync(scratch, { recursive: true, force: true });
try {
  execFileSync(
    process.execPath,
    [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', scratch],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
} catch {
  rmSync(scratch, { recursive: true, force: true });
  console.error('build: tsc failed (above); dist/ is left as it was');
  process.exit(1);
}
writeFileSync(
  join(scratch, BUILD_STAMP),
  `${JSON.stringify({ builtAt: new Date().toISOString(), node: process.version })}\n`,
);
rmSync(out, { recursive: true, force: true });
renameSync(scratch, out);
console.log(`build: compiled src/ to ${basename(out)}/`);
