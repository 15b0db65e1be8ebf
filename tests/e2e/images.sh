#!/usr/bin/env bash
# Builds the images the end-to-end nodes run, without a registry, into
#   $E2E_CACHE/images/{operator,pause}.tar   (docker archives for `ctr images import`)
#   $E2E_CACHE/images/flannel.tar            (with a second argument)
#
# - the operator image from ./Dockerfile, unchanged, as `docker build` would;
# - its base (the Dockerfile's FROM) made here from Debian packages with
#   mmdebstrap: Debian's Python 3.11 with venv and the user tools the
#   Dockerfile calls, under the name the Dockerfile expects;
# - a pause image for pod sandboxes: the static `pause` binary built by
#   controlplane/build.sh node;
# - with the bin folder of tests/e2e/flannel/build.sh: flannel's two images,
#   laid out as upstream's: localhost/flannel:<version> with /opt/bin/flanneld
#   and /opt/bin/install-conf on Debian's iptables (flanneld runs it for
#   --ip-masq), and localhost/flannel-cni-plugin:<version> with /flannel,
#   which its init container copies with `cp`.
#
# Images live in a buildah store of their own under $E2E_CACHE, so the
# Dockerfile's layers are reused between runs: only changed steps rebuild.
# Usage: images.sh <bin folder of controlplane/build.sh node> [<bin folder of tests/e2e/flannel/build.sh>]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$1
cache=${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/network-operator/e2e}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
out="$cache/images"
mkdir -p "$out"
buildah() { command buildah --root "$cache/containers/storage" --runroot "$cache/containers/run" --storage-driver overlay "$@"; }
# Working containers of an interrupted earlier run; the store is this script's own.
buildah rm --all >/dev/null

base=$(sed -n 's/^FROM \([^ ]*\).*/\1/p' "$root/Dockerfile" | head -1)
packages="python3,python3-venv,python-is-python3,passwd"
if ! buildah inspect --type image "localhost/$base" >/dev/null 2>&1; then
  echo "images: base $base from Debian bookworm ($packages)..." >&2
  rootfs="$out/.base-rootfs.tar"
  mmdebstrap --quiet --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" </dev/null
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$rootfs" / >/dev/null
  buildah config --env LANG=C.UTF-8 --cmd python3 "$ctr"
  buildah commit --quiet --rm "$ctr" "localhost/$base" >/dev/null
  rm -f "$rootfs"
fi

if [ ! -s "$out/pause.tar" ] || [ "$bin/pause" -nt "$out/pause.tar" ]; then
  echo "images: pause..." >&2
  ctr=$(buildah from scratch)
  buildah copy --quiet "$ctr" "$bin/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  buildah commit --quiet --rm "$ctr" localhost/pause:e2e >/dev/null
  rm -f "$out/pause.tar"
  buildah push --quiet localhost/pause:e2e "docker-archive:$out/.pause.tar:localhost/pause:e2e"
  mv "$out/.pause.tar" "$out/pause.tar"
fi

# Each RUN of the build reaches the package index through this host's TLS
# settings: its CA bundle and pip configuration, mounted for the build only.
mounts=()
for f in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
  [ -f "$f" ] && mounts+=(--volume "$f:$f:ro")
done
if [ -n "${2:-}" ]; then
  fbin=$2
  version=$(basename "$(dirname "$fbin")")  # <flannel version>-<plugins version>
  flannel=localhost/flannel:${version%-*} plugin=localhost/flannel-cni-plugin:${version#*-}
  if ! buildah inspect --type image localhost/flannel-base:bookworm >/dev/null 2>&1; then
    echo "images: flannel's base from Debian bookworm (iptables)..." >&2
    rootfs="$out/.flannel-rootfs.tar"
    mmdebstrap --quiet --variant=minbase --include=iptables bookworm "$rootfs" "$mirror" </dev/null
    ctr=$(buildah from scratch)
    buildah add --quiet "$ctr" "$rootfs" / >/dev/null
    buildah commit --quiet --rm "$ctr" localhost/flannel-base:bookworm >/dev/null
    rm -f "$rootfs"
  fi
  if [ ! -s "$out/flannel.tar" ] || [ "$fbin/flanneld" -nt "$out/flannel.tar" ]; then
    echo "images: $flannel, $plugin..." >&2
    ctr=$(buildah from --pull=never localhost/flannel-base:bookworm)
    buildah copy --quiet "$ctr" "$fbin/flanneld" "$fbin/install-conf" /opt/bin/ >/dev/null
    buildah config --entrypoint '["/opt/bin/flanneld"]' "$ctr"
    buildah commit --quiet --rm "$ctr" "$flannel" >/dev/null
    ctr=$(buildah from --pull=never localhost/flannel-base:bookworm)
    buildah copy --quiet "$ctr" "$fbin/flannel" /flannel >/dev/null
    buildah commit --quiet --rm "$ctr" "$plugin" >/dev/null
    rm -f "$out/flannel.tar"
    buildah push --quiet "$flannel" "docker-archive:$out/.flannel.tar:$flannel"
    buildah push --quiet "$plugin" "docker-archive:$out/.flannel-cni-plugin.tar:$plugin"
    mv "$out/.flannel-cni-plugin.tar" "$out/flannel-cni-plugin.tar"
    mv "$out/.flannel.tar" "$out/flannel.tar"
  fi
fi

echo "images: operator from Dockerfile..." >&2
buildah bud --quiet --layers --pull=never --isolation=chroot "${mounts[@]}" \
  --tag localhost/network-operator:0.1.0 --file "$root/Dockerfile" "$root" >/dev/null
id=$(buildah inspect --type image --format '{{.FromImageID}}' localhost/network-operator:0.1.0)
if [ "$(cat "$out/operator.id" 2>/dev/null)" != "$id" ] || [ ! -s "$out/operator.tar" ]; then
  rm -f "$out/operator.tar"
  buildah push --quiet localhost/network-operator:0.1.0 "docker-archive:$out/.operator.tar:localhost/network-operator:0.1.0"
  mv "$out/.operator.tar" "$out/operator.tar"
  echo "$id" >"$out/operator.id"
fi
echo "$out"
