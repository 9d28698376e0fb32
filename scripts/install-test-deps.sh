#!/usr/bin/env bash
# System packages the test suite uses, from Debian: Chromium for the browser tests, coturn for
# TURN, poppler-utils to read generated PDFs, openssh-server for the fleet deploy tests (started
# on a loopback port by the test itself, never as a service), janus for `bench capacity --server
# janus` and its test (started by the bench with its own config, never as a service).
# Idempotent; needs root (apt-get).
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v turnserver >/dev/null 2>&1 || need+=(coturn)
command -v pdfinfo >/dev/null 2>&1 || need+=(poppler-utils)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/bin/janus ] || need+=(janus)

if [ ${#need[@]} -eq 0 ]; then
  echo "test dependencies present: chromium, coturn, poppler-utils, openssh-server, janus"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing ${need[*]}; install them with your system's package manager" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "missing ${need[*]}; run this script as root (it uses apt-get)" >&2; exit 1; }
  sudo=(sudo)
fi
echo "installing ${need[*]} from Debian"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
