#!/usr/bin/env bash
# The context service's needs (Debian), only those missing: universal-ctags and ripgrep for the
# index bench's baselines; Node, Python, Go and Java runtimes, with which the cap-index tests
# capture real stack traces from failing fixture code.
set -euo pipefail

missing=()
command -v ctags >/dev/null 2>&1 || missing+=(universal-ctags)
command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
