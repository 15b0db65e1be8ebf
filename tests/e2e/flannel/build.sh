#!/usr/bin/env bash
# Builds the pod network of the multi-node end-to-end cluster once into
#   $E2E_CACHE/flannel/<flannel version>-<plugins version>/bin/
# and prints that folder: flanneld and install-conf (flannel's image), and
# the `flannel` CNI meta-plugin (flannel's CNI image).
#
# - flanneld from github.com/flannel-io/flannel at the version in go.mod, the
#   module's own main.go built here with every dependency pinned by go.mod
#   and go.sum, less one line: the blank import of the Tencent Cloud VPC
#   backend, whose SDK module the Go module proxy refuses to serve.
#   CGO on, static, as upstream builds it on amd64 (its UDP backend needs it).
# - the `flannel` CNI plugin from github.com/containernetworking/plugins
#   v0.9.1 (plugins/meta/flannel, removed from that module in v1.0; flannel's
#   own cni-plugin module is refused by the proxy too).
# Rebuild: delete that folder and run it again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
flannel_version=$(awk '$1 == "github.com/flannel-io/flannel" {print $2}' "$here/go.mod")
plugins_version=v0.9.1
cache=${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/network-operator/e2e}/flannel
bin="$cache/$flannel_version-$plugins_version/bin"
if [ -x "$bin/flanneld" ] && [ -x "$bin/install-conf" ] && [ -x "$bin/flannel" ]; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$here"
src=$(go mod download -json "github.com/flannel-io/flannel@$flannel_version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
cp go.mod go.sum tools.go "$work/"
grep -v '"github.com/flannel-io/flannel/pkg/backend/tencentvpc"' "$src/main.go" >"$work/main.go"
cd "$work"
echo "building flanneld $flannel_version..." >&2
CGO_ENABLED=1 go build -trimpath -o "$bin/.flanneld.tmp" \
  -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$flannel_version -extldflags -static" .
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/.install-conf.tmp" github.com/flannel-io/flannel/cmd/install_conf
echo "building the flannel CNI plugin $plugins_version..." >&2
CGO_ENABLED=0 GOBIN="$work/cni" go install -trimpath -ldflags "-s -w" \
  "github.com/containernetworking/plugins/plugins/meta/flannel@$plugins_version"
mv "$work/cni/flannel" "$bin/flannel"
mv "$bin/.install-conf.tmp" "$bin/install-conf"
mv "$bin/.flanneld.tmp" "$bin/flanneld"
echo "$bin"
