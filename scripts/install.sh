#!/bin/bash
# One-step set-up on a fresh Debian (bookworm) machine, as root: the system packages sampan
# and its tests use, and a virtualenv in .venv made from Debian's own python3 (not a shim),
# so that the console scripts start the interpreter directly.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc                 # the venv and its interpreter
  libseccomp2 busybox-static iproute2 procps util-linux  # runtime parts, base rootfs
  runc podman conmon uidmap fuse-overlayfs crun tini  # peers the tests compare with
  skopeo umoci docker-registry apache2-utils openssl  # image tooling and the test registry
  docker.io docker-compose                            # dockerd, the peer for the engine; compose as a client
  nftables iptables hyperfine iperf3 curl git strace  # networking, benchmarks, exec tracing
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# sampan-runtime: the C launcher (scripts/sampan-runtime.c says why) in front of the
# runtime's script, which it runs with -IS (no site, no environment variables). A pip-only
# install has the script alone as sampan-runtime: the same runtime, one more interpreter
# start per container.
mkdir -p .venv/libexec
sed "1s|.*|#!$PWD/.venv/bin/python -IS|" scripts/sampan-runtime > .venv/libexec/sampan-runtime
chmod 755 .venv/libexec/sampan-runtime
# ... and compiled: the launcher runs the .pyc, so no start compiles the script
.venv/bin/python -c 'import py_compile, sys; py_compile.compile(sys.argv[1], sys.argv[1] + ".pyc", doraise=True)' "$PWD/.venv/libexec/sampan-runtime"
cc -O2 -Wall -Werror -o .venv/bin/sampan-runtime.new scripts/sampan-runtime.c \
  -DPYTHON="\"$PWD/.venv/bin/python\"" -DSCRIPT="\"$PWD/.venv/libexec/sampan-runtime\""
mv -f .venv/bin/sampan-runtime.new .venv/bin/sampan-runtime
# Byte-compile now: with PYTHONDONTWRITEBYTECODE set, sampan would otherwise be compiled
# again on every container start.
.venv/bin/python -m compileall -q src/sampan >/dev/null
# The runtime's modules in one file, read by each `sampan-runtime` command instead of some
# 35 imports through the file system (src/sampan/bundle.py says why).
.venv/bin/python -m sampan.bundle >/dev/null
echo "sampan installed in $(pwd)/.venv" >&2
