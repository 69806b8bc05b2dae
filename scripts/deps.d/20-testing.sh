#!/usr/bin/env bash
# Toolchains the testing agent's fixture repositories run with (issue 5), only those missing:
# Go (standard library only), Java with Maven working offline against Debian's packaged jars
# (JUnit 5, surefire) and Checkstyle, coverage.py, black and pylint for Python, and Vitest with
# its V8 coverage from the npm registry into /var/cache/cap-testing/node (the tests copy it into
# the sandbox workspace; the sandbox has no network). Idempotent and quick when everything is present.
set -euo pipefail

missing=()
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
/usr/bin/python3 -c 'import coverage' >/dev/null 2>&1 || missing+=(python3-coverage)
[ -d /usr/share/maven-repo/org/junit/jupiter/junit-jupiter-engine ] || missing+=(junit5)
/usr/bin/python3 -c "import black" >/dev/null 2>&1 || missing+=(black)
/usr/bin/python3 -c "import pylint" >/dev/null 2>&1 || missing+=(pylint)
command -v checkstyle >/dev/null 2>&1 || missing+=(checkstyle)
[ -d /usr/share/maven-repo/org/apache/maven/plugins/maven-surefire-plugin ] || missing+=(libsurefire-java)
[ -d /usr/share/maven-repo/org/apache/maven/plugins/maven-compiler-plugin ] || missing+=(libmaven-compiler-plugin-java)
[ -d /usr/share/maven-repo/org/apache/maven/plugins/maven-resources-plugin ] || missing+=(libmaven-resources-plugin-java)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# vitest (pinned) for the TypeScript fixtures, outside any global npm prefix.
node_dir=/var/cache/cap-testing/node
vitest_version=1.6.0
if [ ! -f "$node_dir/node_modules/vitest/package.json" ] \
  || [ ! -f "$node_dir/node_modules/@vitest/coverage-v8/package.json" ] \
  || ! grep -q "\"version\": \"$vitest_version\"" "$node_dir/node_modules/vitest/package.json"; then
  if [ "$(id -u)" -ne 0 ] && [ ! -w "$(dirname "$node_dir")" ]; then
    echo "vitest is missing from $node_dir; run this script as root" >&2
    exit 1
  fi
  mkdir -p "$node_dir"
  echo "installing vitest $vitest_version into $node_dir" >&2
  (cd "$node_dir" && npm install --no-audit --no-fund --silent --no-save --prefix "$node_dir" \
    "vitest@$vitest_version" "@vitest/coverage-v8@$vitest_version" >/dev/null)
fi
