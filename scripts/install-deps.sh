#!/usr/bin/env bash
# Installs the system tools the platform and its tests need on this machine (Debian), only
# those missing: bubblewrap for the local sandbox, and Python with pytest inside it for the
# sample repository. Each area may add its own needs as scripts/deps.d/*.sh, run in order.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
/usr/bin/python3 -c 'import pytest' >/dev/null 2>&1 || missing+=(python3-pytest)
command -v git >/dev/null 2>&1 || missing+=(git)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for script in deps.d/*.sh; do
  [ -e "$script" ] || continue
  bash "$script"
done
