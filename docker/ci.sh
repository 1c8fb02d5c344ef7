#!/usr/bin/env bash
# Build the image with podman (chroot isolation, debootstrap base), report its size, start the
# server from the built image's files and ask it /healthz and one match over HTTP.
#   bash docker/ci.sh        (root; installs podman and debootstrap when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
command -v podman >/dev/null || need+=(podman)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
base="$(bash docker/base.sh)"
t0=$(date +%s)
# Wheels of every runtime dependency, fetched here with this machine's pip settings (a build
# inside the image may not trust this network's TLS); the image installs only from them.
[ -x .venv/bin/pip ] || make install >/dev/null
.venv/bin/pip wheel -q --wheel-dir docker/wheels . >&2
.venv/bin/pip download -q --dest docker/wheels "setuptools>=68" wheel >&2
podman build --isolation=chroot --build-arg BASE="$base" \
  --build-arg PIP_OPTIONS="--no-index --find-links /wheels" -t localhost/cratedig:ci . >&2
echo "image built in $(( $(date +%s) - t0 )) s"
podman image prune -f >/dev/null  # the build stage's layers
size=$(podman image inspect --format '{{.Size}}' localhost/cratedig:ci)
echo "image size: $(( size / 1000000 )) MB"

# The server from the image's own file system. `podman run` cannot start containers in this
# sandbox (crun: setrlimit RLIMIT_NOFILE not permitted), so the image's files are exported and
# the server runs under chroot as the image's user.
rootfs="$(mktemp -d /tmp/cratedig-image.XXXXXX)"
chmod 755 "$rootfs"
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  umount "$rootfs/proc" "$rootfs/dev" 2>/dev/null || true
  rm -rf "$rootfs"
}
trap cleanup EXIT
cid=$(podman create localhost/cratedig:ci)
podman export "$cid" | tar -C "$rootfs" -x
podman rm "$cid" >/dev/null
echo "largest parts of the image:"
du -xsm "$rootfs"/opt/cratedig/lib/python3*/site-packages/* "$rootfs"/usr/lib/x86_64-linux-gnu \
  "$rootfs"/usr/lib/python3* 2>/dev/null | sort -rn | sed -n 1,12p  # sed reads everything: no SIGPIPE under pipefail
# A tiny library of synthesized songs inside the image's /music.
.venv/bin/python - "$rootfs/music" <<'PY'
import sys
from cratedig.synth import demo_library
demo_library(sys.argv[1], n=4, seconds=16)
PY
mount -t proc proc "$rootfs/proc"
mount --bind /dev "$rootfs/dev"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$rootfs/data" && chmod 777 "$rootfs/data"
run() { chroot --userspec=10001:10001 "$rootfs" /usr/bin/env -i PATH=/opt/cratedig/bin:/usr/bin:/bin \
  CRATEDIG_DATA=/data NUMBA_CACHE_DIR=/tmp/numba HOME=/data "$@"; }
run cratedig ingest /music --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print("ingested in the image:", r["analysed"], "tracks")'
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run cratedig serve --host 127.0.0.1 --port "$port" --music /music &
pid=$!
for _ in $(seq 120); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
echo "healthz: $(curl -fsS "http://127.0.0.1:$port/healthz")"
python3 - "http://127.0.0.1:$port" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
tracks = json.load(urllib.request.urlopen(base + "/api/tracks"))["tracks"]
best = (0, None)
for t in tracks:
    req = urllib.request.Request(base + "/api/match", json.dumps({"track_id": t["track_id"]}).encode(),
                                 {"Content-Type": "application/json"})
    m = json.load(urllib.request.urlopen(req))
    n = sum(len(x["candidates"]) for x in m["matches"])
    best = max(best, (n, t["path"]), key=lambda b: b[0])
print(f"match from the image: {len(tracks)} tracks matched over HTTP; best {best[1]}: {best[0]} candidates")
assert best[0] > 0, "no candidates at all"
PY
echo "image check passed"
