#!/bin/bash
# The whole test suite, as CI runs it: set-up, lint, type check, the tests on this host,
# then the cgroup v2 tests inside the qemu VM. Needs root.
#   scripts/test.sh [pytest args]      (SAMPAN_SKIP_VM=1 leaves out the VM stage locally)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "sampan's tests drive the kernel: run them as root" >&2; exit 1; }
bash scripts/install.sh
echo "== ruff"; .venv/bin/ruff check src tests
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
if [ "${SAMPAN_SKIP_VM:-0}" != 1 ] && [ -x scripts/test-vm.sh ]; then
  echo "== cgroup v2 VM"; bash scripts/test-vm.sh
fi
