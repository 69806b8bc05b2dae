#!/usr/bin/env bash
# Installs the system tools this machine lacks (Debian), only those missing. Each area keeps
# its needs in scripts/deps.d/NN-*.sh, run in order, and the number says who needs it:
#
#   install-deps.sh run    00-19: what running the platform needs (`make run`): git, the
#                          sandbox's bubblewrap, cgroups and disk-limit tools, pytest for the
#                          sample repository;
#   install-deps.sh test   all of them (`make test`): the above, and 20-99, what only the tests
#                          use (the testing agent's toolchains, the index's baselines, Chromium
#                          for the dashboard's test, the sandbox attack suite's tools).
#
# Idempotent, and quick when everything is present.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  echo "usage: $0 run|test" >&2
  exit 2
}
[ $# -eq 1 ] || usage
case "$1" in
  run) pattern='deps.d/[01][0-9]-*.sh' ;;
  test) pattern='deps.d/[0-9][0-9]-*.sh' ;;
  *) usage ;;
esac

for script in $pattern; do
  [ -e "$script" ] || continue
  bash "$script"
done
