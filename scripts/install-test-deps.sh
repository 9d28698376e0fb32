#!/usr/bin/env bash
# System packages the test suite uses, from Debian: Chromium for the browser tests, coturn for
# TURN, poppler-utils to read generated PDFs. Idempotent; needs root (apt-get).
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v turnserver >/dev/null 2>&1 || need+=(coturn)
command -v pdfinfo >/dev/null 2>&1 || need+=(poppler-utils)

if [ ${#need[@]} -eq 0 ]; then
  echo "test dependencies present: chromium, coturn, poppler-utils"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing ${need[*]}; run this script as root (it uses apt-get)" >&2
  exit 1
fi
echo "installing ${need[*]} from Debian"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
