#!/bin/sh
# Make an OCI bundle whose rootfs is Debian's static busybox: no network, no image needed.
#   make-busybox-bundle.sh DIR [args for the container, default: sh]
set -eu
dir=${1:?usage: make-busybox-bundle.sh DIR [ARGS...]}
shift
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "static busybox missing: apt-get install busybox-static" >&2; exit 1; }
runtime=${SAMPAN_RUNTIME:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/sampan-runtime}

mkdir -p "$dir/rootfs"
cd "$dir/rootfs"
mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home var/www
chmod 1777 tmp
chmod 700 root
cp "$busybox" bin/busybox
for applet in $(bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "bin/$applet"
done
cat > etc/passwd <<'PW'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > etc/group <<'GR'
root:x:0:
daemon:x:1:
staff:x:50:
nogroup:x:65534:
GR
cd ..
rm -f config.json
"$runtime" spec
if [ "$#" -gt 0 ]; then
  # Put the requested command in process.args and run without a terminal.
  "$(dirname "$runtime")/python" - "$@" <<'PY'
import json, sys
with open("config.json") as f:
    spec = json.load(f)
spec["process"]["args"] = sys.argv[1:]
spec["process"]["terminal"] = False
with open("config.json", "w") as f:
    json.dump(spec, f, indent="\t")
PY
fi
echo "$dir"
