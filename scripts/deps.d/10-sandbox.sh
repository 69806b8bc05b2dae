#!/usr/bin/env bash
# What the local sandbox (issue 8) needs to run, only those missing: bubblewrap 0.8+ (for
# --disable-userns and --size), bash (the launcher), and cgroups mounted (v1 controllers or a
# v2 tree) for the CPU, memory and process limits; e2fsprogs' mkfs.ext4 and util-linux's
# mount/losetup for the workspace filesystems of the hard disk limit. Its attack suite's tools
# are in 50-sandbox-attacks.sh. Idempotent and quick when everything is present.
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
[ -x /bin/bash ] || missing+=(bash)
[ -x /usr/sbin/losetup ] || missing+=(util-linux)
[ -x /usr/bin/mount ] || missing+=(mount)
[ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || missing+=(e2fsprogs)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# bubblewrap older than 0.8 lacks options the sandbox relies on. The help is read whole
# first: `grep -q` in a pipe stops reading at the match, and under pipefail bwrap's SIGPIPE
# would then fail the check now and then.
bwrap_help="$(bwrap --help 2>&1 || true)"
if ! grep -q -- --disable-userns <<<"$bwrap_help"; then
  echo "bubblewrap $(bwrap --version 2>/dev/null) is too old: 0.8.0 or later is needed" >&2
  exit 1
fi

# The limits need cgroups; most hosts mount them, a bare container may not.
if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -e /sys/fs/cgroup/memory/cgroup.procs ]; then
  if [ "$(id -u)" -eq 0 ] && mountpoint -q /sys/fs/cgroup 2>/dev/null; then
    echo "no cgroup controllers under /sys/fs/cgroup; the sandbox will refuse to start" >&2
  elif [ "$(id -u)" -eq 0 ]; then
    echo "mounting cgroup2 at /sys/fs/cgroup" >&2
    mount -t cgroup2 none /sys/fs/cgroup || echo "cannot mount cgroups; the sandbox will refuse to start" >&2
  fi
fi
