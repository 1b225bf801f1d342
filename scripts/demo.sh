#!/bin/bash
# The main job, from nothing and without network: install sampan, make a busybox rootfs from
# Debian's static busybox, run it with the runtime alone, then start the engine (sampand),
# import the rootfs as an image through the docker CLI and run a container from it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: containers need it" >&2; exit 1; }
bash scripts/install.sh
work=$(mktemp -d /tmp/sampan-demo.XXXXXX)
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bash scripts/make-busybox-bundle.sh "$work/bundle" sh -c \
  'echo "hello from $(hostname): pid $$, user $(id -un)"; ps -o pid,comm' >/dev/null
echo "\$ sampan-runtime run --bundle $work/bundle demo"
.venv/bin/sampan-runtime run --bundle "$work/bundle" "demo-$$"

echo
echo "\$ sampand -H unix://$work/sampan.sock --data-root $work/data &"
.venv/bin/sampand -H "unix://$work/sampan.sock" --data-root "$work/data" \
  --exec-root "$work/exec" --pidfile "$work/sampand.pid" 2>"$work/sampand.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$work/sampan.sock" ] && break; sleep 0.1; done
export DOCKER_HOST="unix://$work/sampan.sock"
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
echo "\$ docker import rootfs.tar busybox:static"
docker import --change 'CMD ["sh"]' "$work/rootfs.tar" busybox:static
echo "\$ docker run --rm busybox:static sh -c '...'"
docker run --rm busybox:static sh -c \
  'echo "hello from a sampand container $(hostname)"; grep -E "^(CapEff|NoNewPrivs):" /proc/self/status'
docker ps -a --format '{{.ID}} {{.Status}}'
