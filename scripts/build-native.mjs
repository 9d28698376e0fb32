#!/usr/bin/env node
// Builds the node's native addon (native/*.c → build/Release/returncam_native.node) with the
// node-gyp that ships with npm, against this Node's own headers (`npm install` runs it).
// The addon makes SRTP's AES-GCM about six times cheaper per packet (src/node/media/nativeGcm.ts),
// sends the node's datagrams without Node's per-send objects (src/node/media/nativeUdp.ts) and
// reads them without an ArrayBuffer per datagram (src/node/media/nativeUdpRecv.ts); without it
// the node still runs, on Node's own paths, and says so at start. So a failed build
// (no python3, make or C compiler) warns and leaves the install working, unless --strict.
//
// Usage: node scripts/build-native.mjs [--strict]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const strict = process.argv.includes('--strict');

if (process.env.RETURNCAM_NATIVE === 'off') {
  console.log('build-native: RETURNCAM_NATIVE=off, not built');
  process.exit(0);
}

/** Where this Node is installed (its headers and npm live under it). */
const prefix = join(dirname(process.execPath), '..');

/** npm names its node-gyp in scripts it runs; otherwise the one next to this Node's npm. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c) => c && existsSync(c));
}

function fail(message) {
  const text = `build-native: ${message}. The node will run without it (SRTP encryption in JavaScript and UDP through Node's dgram, slower); install python3, make and a C compiler, then run \`npm run build:native\``;
  if (strict) {
    console.error(text);
    process.exit(1);
  }
  console.warn(text);
  process.exit(0);
}

const gyp = nodeGyp();
if (!gyp) fail('node-gyp was not found (it ships with npm)');
// Outside npm, point node-gyp at this Node's installed headers when they are there (npm passes
// its own `nodedir` setting); otherwise node-gyp would try to download them.
const args = [gyp, 'rebuild', '--loglevel=warn'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
const run = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (run.error) fail(`node-gyp did not start (${run.error.message})`);
if (run.status !== 0) fail(`node-gyp failed (exit ${run.status}, output above)`);
console.log('build-native: built build/Release/returncam_native.node');
