#!/usr/bin/env bash
# Make the image's base, localhost/cratedig-base:bookworm, from Debian's own packages with
# debootstrap (no container registry needed). Kept once built; prints the image name.
set -euo pipefail
IMAGE=localhost/cratedig-base:bookworm
if podman image exists "$IMAGE"; then echo "$IMAGE"; exit 0; fi
root="$(mktemp -d /tmp/cratedig-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >&2
cat > "$root/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >&2
echo "$IMAGE"
