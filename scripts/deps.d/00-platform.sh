#!/usr/bin/env bash
# What the platform itself needs to run (Debian), only those missing: git for the forge's
# host-side plumbing, and Python with pytest, which the sample repository's tests run with in
# the sandbox. Idempotent and quick when everything is present.
set -euo pipefail

missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
/usr/bin/python3 -c 'import pytest' >/dev/null 2>&1 || missing+=(python3-pytest)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
