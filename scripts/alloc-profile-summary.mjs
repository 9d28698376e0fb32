#!/usr/bin/env node
// Summarises a sampling heap profile (scripts/alloc-profile.cjs, or any `HeapProfiler.stopSampling`
// result): the sampled total, the functions that allocated most themselves, and the call chains
// (outermost first) that led there.
//
//   node scripts/alloc-profile-summary.mjs PROFILE.json [--top N]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MB = 1024 * 1024;

function frameName(node) {
  const f = node.callFrame;
  const file = f.url ? f.url.split('/').slice(-2).join('/') : '';
  return `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`;
}

/** { totalBytes, sites: [{ name, bytes }], stacks: [{ stack, bytes }] }, largest first. */
export function summarize(profile, top = 20) {
  const sites = new Map();
  const stacks = new Map();
  let totalBytes = 0;
  const walk = (node, path) => {
    const name = frameName(node);
    const here = path.concat(name);
    if (node.selfSize > 0) {
      totalBytes += node.selfSize;
      sites.set(name, (sites.get(name) ?? 0) + node.selfSize);
      const key = here.slice(-6).join(' > ');
      stacks.set(key, (stacks.get(key) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, []);
  const largest = (m, key) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, bytes]) => ({ [key]: k, bytes }));
  return { totalBytes, sites: largest(sites, 'name'), stacks: largest(stacks, 'stack') };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, ...rest] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node scripts/alloc-profile-summary.mjs PROFILE.json [--top N]\n');
    process.exit(2);
  }
  const at = rest.indexOf('--top');
  const top = at >= 0 ? Number(rest[at + 1]) : 20;
  if (!Number.isInteger(top) || top < 1) {
    process.stderr.write('--top takes a whole number of rows, e.g. --top 30\n');
    process.exit(2);
  }
  let profile;
  try {
    profile = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    process.stderr.write(`${file}: ${err.message}\n`);
    process.exit(1);
  }
  if (!profile?.head?.callFrame) {
    process.stderr.write(`${file}: not a sampling heap profile (no head.callFrame)\n`);
    process.exit(1);
  }
  const s = summarize(profile, top);
  const pct = (b) => `${((100 * b) / s.totalBytes).toFixed(1).padStart(5)} %`;
  console.log(`sampled ${(s.totalBytes / MB).toFixed(1)} MB`);
  console.log('\nfunctions that allocated it:');
  for (const x of s.sites)
    console.log(`${(x.bytes / MB).toFixed(2).padStart(8)} MB ${pct(x.bytes)}  ${x.name}`);
  console.log('\ncall chains (outermost first):');
  for (const x of s.stacks)
    console.log(`${(x.bytes / MB).toFixed(2).padStart(8)} MB ${pct(x.bytes)}  ${x.stack}`);
}
