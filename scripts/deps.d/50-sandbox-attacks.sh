#!/usr/bin/env bash
# What the sandbox's attack suite (tests only) needs beyond what the sandbox runs with, only
# those missing: curl and getent (network attacks tried from inside), python3 (attacks written
# in Python) and util-linux's unshare. Idempotent and quick when everything is present.
set -euo pipefail

missing=()
[ -x /usr/bin/curl ] || missing+=(curl)
[ -x /usr/bin/getent ] || missing+=(libc-bin)
[ -x /usr/bin/python3 ] || missing+=(python3)
[ -x /usr/bin/unshare ] || missing+=(util-linux)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
