#!/usr/bin/env bash
# Builds the control plane binaries once into a cache folder keyed by version:
#   $CONTROLPLANE_CACHE/<kubernetes version>-<helm version>/bin/
# and prints that bin folder. A second call finds the binaries and returns at once.
# `build.sh node` also builds what a real node needs (make e2e): kubelet,
# kube-scheduler and the pod sandbox's pause process.
# Rebuild: delete that folder (or `make controlplane-clean`) and run it again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/go.mod")
helm_version=v3.22.0
cache=${CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/network-operator/controlplane}
bin="$cache/$k8s_version-$helm_version/bin"
tools="etcd kube-apiserver kube-controller-manager kubectl helm"
case ${1:-} in
  "") ;;
  node) tools+=" kube-scheduler kubelet pause" ;;
  *) echo "usage: $0 [node]" >&2; exit 2 ;;
esac

missing=""
for t in $tools; do [ -x "$bin/$t" ] || missing+=" $t"; done
if [ -z "$missing" ]; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
export CGO_ENABLED=0
# Stamp the version, or /version reports v0.0.0.
pkg=k8s.io/component-base/version
minor=${k8s_version#v*.}; minor=${minor%%.*}
ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
# client-go carries its own copy of the version for kubectl's client side.
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

cd "$here"
# The Kubernetes commands in one `go build`: their packages are loaded once,
# and one links while the others still compile.
k8s="" k8s_names=""
for t in $missing; do
  case $t in etcd|pause|helm) ;; *) k8s+=" k8s.io/kubernetes/cmd/$t" k8s_names+=" $t"; continue ;; esac
  echo "building $t..." >&2
  case $t in
    etcd|pause) go build -trimpath -ldflags "-s -w" -o "$bin/.$t.tmp" "./$t" ;;
    helm) GOBIN="$bin/.helm" go install -trimpath \
            -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" "helm.sh/helm/v3/cmd/helm@$helm_version" \
            && mv "$bin/.helm/helm" "$bin/.$t.tmp" && rmdir "$bin/.helm" ;;
  esac
  mv "$bin/.$t.tmp" "$bin/$t"
done
if [ -n "$k8s" ]; then
  echo "building$k8s_names..." >&2
  rm -rf "$bin/.k8s" && mkdir "$bin/.k8s"
  # shellcheck disable=SC2086 # one word per package
  go build -trimpath -ldflags "$ldflags" -o "$bin/.k8s/" $k8s
  for t in $k8s_names; do mv "$bin/.k8s/$t" "$bin/$t"; done
  rmdir "$bin/.k8s"
fi
echo "$bin"
