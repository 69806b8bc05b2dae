#!/usr/bin/env bash
# Toolchains the testing agent's fixture repositories run with (issue 5), only those missing:
# Go (standard library only); Java with Maven working offline against Debian's packaged jars
# (JUnit 5, surefire), JaCoCo, Checkstyle, and Gradle (Debian's 4.4, offline, JUnit 4);
# coverage.py, black, pylint and mypy for Python, and ruff (its pinned wheel's binary, into
# /usr/local/bin, which the sandbox sees); from the npm registry, pinned, into
# /var/cache/cap-testing/: Vitest with its V8 coverage (node/), ESLint, Prettier and TypeScript
# (node-lint/), Jest and Mocha (node-jest/). The tests copy a cache into the sandbox workspace
# (the sandbox has no network). Idempotent and quick when everything is present.
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
[ -f /usr/share/java/org.jacoco.agent.jar ] || missing+=(libjacoco-java)
/usr/bin/python3 -c "import mypy" >/dev/null 2>&1 || missing+=(mypy)
command -v jar >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v gradle >/dev/null 2>&1 || missing+=(gradle)
# pip fetches ruff's wheel (below).
/usr/local/bin/ruff --version >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 \
  || missing+=(python3-pip)
[ -d /usr/share/maven-repo/junit/junit ] || missing+=(junit4)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ruff (pinned): a static binary, taken from its wheel.
ruff_version=0.6.9
if ! /usr/local/bin/ruff --version 2>/dev/null | grep -qx "ruff $ruff_version"; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ruff $ruff_version is missing from /usr/local/bin; run this script as root" >&2
    exit 1
  fi
  echo "installing ruff $ruff_version into /usr/local/bin" >&2
  wheels=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$wheels" "ruff==$ruff_version"
  python3 -m zipfile -e "$wheels"/ruff-"$ruff_version"-*.whl "$wheels/unpacked"
  install -m 0755 "$wheels/unpacked/ruff-$ruff_version.data/scripts/ruff" /usr/local/bin/ruff
  rm -rf "$wheels"
fi

# npm packages (pinned), each set in its own directory outside any global npm prefix:
# npm_cache DIR PACKAGE@VERSION...
npm_cache() {
  local dir=$1
  shift
  local package name version present=1
  for package in "$@"; do
    name=${package%@*}
    version=${package##*@}
    grep -q "\"version\": \"$version\"" "$dir/node_modules/$name/package.json" 2>/dev/null || present=0
  done
  [ "$present" -eq 1 ] && return 0
  if [ "$(id -u)" -ne 0 ] && [ ! -w "$(dirname "$dir")" ]; then
    echo "$* missing from $dir; run this script as root" >&2
    exit 1
  fi
  mkdir -p "$dir"
  echo "installing $* into $dir" >&2
  (cd "$dir" && npm install --no-audit --no-fund --silent --no-save --prefix "$dir" "$@" >/dev/null)
}

npm_cache /var/cache/cap-testing/node vitest@1.6.0 @vitest/coverage-v8@1.6.0
npm_cache /var/cache/cap-testing/node-lint eslint@8.57.0 @typescript-eslint/parser@7.18.0 \
  typescript@5.4.5 prettier@3.3.3
npm_cache /var/cache/cap-testing/node-jest jest@29.7.0 mocha@10.7.3
