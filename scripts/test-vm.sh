#!/bin/bash
# The cgroup v2 tests, run for real inside the qemu test VM from ../shared/vm: a pure cgroup v2
# host with every controller, which this machine (cgroup v1 + an empty unified mount) is not.
#   scripts/test-vm.sh [pytest args]     (default: tests/vm)
# Builds (or reuses) the VM cache first. SAMPAN_VM_CACHE picks the cache (default
# /var/cache/sampan-vm). Needs root. Exits with pytest's status (124: the VM timed out,
# 125: the guest never ran the tests, or its kernel panicked).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test-vm.sh needs root (qemu, debootstrap, 9p)" >&2; exit 1; }
VM=../shared/vm
CACHE=${SAMPAN_VM_CACHE:-/var/cache/sampan-vm}
# The guest has no network: its Python test dependencies are baked into the image.
bash "$VM/make-vm.sh" --pip "pytest" "$CACHE"
[ $# -gt 0 ] || set -- tests/vm
# A soft lockup (a CPU stuck in the kernel for a minute: twice watchdog_thresh, which is
# raised so that a host too busy to run the emulated CPUs for a while is not taken for
# one) panics the guest kernel: the panic prints where the CPU was stuck (the console's
# loglevel=3 hides the lockup's own report), and the run ends there, not at the timeout.
export SAMPAN_VM_APPEND="softlockup_panic=1 watchdog_thresh=30 ${SAMPAN_VM_APPEND:-}"
# The project is shared in at /mnt/share (the cwd there); nothing is installed in the guest,
# so sampan comes from src/. No bytecode or cache files are written back into the share.
exec bash "$VM/run-in-vm.sh" --cache "$CACHE" --timeout 900 . -- \
  env PYTHONPATH=src PYTHONDONTWRITEBYTECODE=1 \
  python3 -m pytest -q -p no:cacheprovider "$@"
