#!/usr/bin/env bash
# Pinned deploy tools, built once from the Go module proxy into a cache outside git.
#
#   deploy/tools.sh helm    prints the path of helm, building it on first use
#
# Why build from source: release download sites are out of reach on the machines this
# project is developed and tested on, but the Go module proxy is not, and helm is a Go
# module. The first build takes about 1.5 min on 2 cores with a warm module cache (see
# deploy/README.md); later calls return at once. Safe to run concurrently (flock).
# HAGGLE_TOOLS_DIR overrides the cache (default: <repo>/.haggle/bin).
set -euo pipefail

HELM_VERSION=v3.22.0
# The Kubernetes version of helm's k8s.io modules, which official builds stamp in (without it
# `helm template` assumes Kubernetes 1.20).
HELM_K8S_MINOR=37

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${HAGGLE_TOOLS_DIR:-$root/.haggle/bin}"
tool="${1:-helm}"
if [ "$tool" != helm ]; then
    echo "unknown tool '$tool' (known: helm)" >&2
    exit 2
fi

target="$cache/helm-$HELM_VERSION-k1.$HELM_K8S_MINOR/helm"
if [ ! -x "$target" ]; then
    command -v go >/dev/null || { echo "building helm needs Go >= 1.24 (apt-get install golang)" >&2; exit 1; }
    mkdir -p "$cache"
    exec 9>"$cache/.helm.lock"
    flock 9
    if [ ! -x "$target" ]; then
        echo "building helm $HELM_VERSION from the Go module proxy (first time only)..." >&2
        start=$(date +%s)
        tmp="$(mktemp -d "$cache/.helm-build.XXXXXX")"
        CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS="-mod=mod -buildvcs=false" go install \
            -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
                -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
                -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR \
                -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
                -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR" \
            "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
        mkdir -p "$(dirname "$target")"
        mv "$tmp/helm" "$target"
        rmdir "$tmp"
        echo "helm $HELM_VERSION built in $(($(date +%s) - start)) s: $target" >&2
    fi
fi
echo "$target"
