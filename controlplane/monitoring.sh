#!/usr/bin/env bash
# What the monitoring tests need, built or fetched once into a cache folder keyed by version:
#   $MONITORING_CACHE/prometheus-<version>-operator-<version>/
#     promtool    Prometheus' rule checker and tester (cmd/promtool of the pinned Go module,
#                 without service discovery)
#     crds/       the ServiceMonitor and PrometheusRule CRDs from prometheus-operator's Go module
# and prints that folder. A second call finds them and returns at once.
# Rebuild: delete that folder and run it again.
set -euo pipefail
# Prometheus' Go module numbers v3.N.M as v0.3NN.M.
prometheus_version=v0.316.0
operator_version=v0.85.0
cache=${MONITORING_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/network-operator/monitoring}
dir="$cache/prometheus-$prometheus_version-operator-$operator_version"

if [ -x "$dir/promtool" ] && [ -d "$dir/crds" ]; then echo "$dir"; exit 0; fi
mkdir -p "$dir"
export CGO_ENABLED=0

if [ ! -x "$dir/promtool" ]; then
  echo "building promtool..." >&2
  # remove_all_sd: none of the cloud service discoveries (the tests only
  # check and test rules), which leaves out their SDKs: 2 min 34 s cold
  # instead of 6 min 12 s, downloads included.
  GOBIN="$dir/.bin" go install -trimpath -ldflags "-s -w" -tags remove_all_sd \
    "github.com/prometheus/prometheus/cmd/promtool@$prometheus_version"
  mv "$dir/.bin/promtool" "$dir/promtool" && rmdir "$dir/.bin"
fi

if [ ! -d "$dir/crds" ]; then
  echo "fetching the prometheus-operator CRDs..." >&2
  src=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$operator_version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$dir/.crds"
  for kind in servicemonitors prometheusrules; do
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$dir/.crds/"
  done
  chmod -R u+w "$dir/.crds"  # the module cache is read-only
  mv "$dir/.crds" "$dir/crds"
fi
echo "$dir"
