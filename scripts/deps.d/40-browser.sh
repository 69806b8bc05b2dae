#!/usr/bin/env bash
# The dashboard's end-to-end test drives Debian's Chromium with playwright-core (never a
# browser download of the test tool's own).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "installing playwright-core" >&2
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
