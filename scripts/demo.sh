#!/bin/bash
# The main job, from nothing: install sampan, make an OCI bundle from Debian's static
# busybox (no network needed) and run a container from it with sampan-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: containers need it" >&2; exit 1; }
bash scripts/install.sh
bundle=$(mktemp -d /tmp/sampan-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
bash scripts/make-busybox-bundle.sh "$bundle" >/dev/null
.venv/bin/python - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["hostname"] = "sampan-demo"
spec["process"]["args"] = ["sh", "-c",
    'echo "hello from $(hostname): pid $$, user $(id -un)"; '
    'echo "processes I can see:"; ps -o pid,comm; '
    'grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status']
spec["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 64}}
json.dump(spec, open(path, "w"), indent=2)
PY
echo "\$ sampan-runtime run --bundle $bundle demo"
exec .venv/bin/sampan-runtime run --bundle "$bundle" "demo-$$"
