#!/usr/bin/env bash
# Builds tests/helm/render (a `helm template` work-alike) offline, in GOPATH
# mode, from Debian's packaged Go sources:
#   apt-get install golang-go golang-github-masterminds-sprig-dev \
#     golang-github-xeipuuv-gojsonschema-dev golang-k8s-sigs-yaml-dev
# Usage: tests/helm/build.sh OUTDIR   -> OUTDIR/render
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
sys=/usr/share/gocode/src
for d in github.com/Masterminds/sprig github.com/Masterminds/semver github.com/xeipuuv/gojsonschema sigs.k8s.io/yaml; do
    if [ ! -d "$sys/$d" ]; then
        echo "missing Go package $sys/$d (install the Debian golang-*-dev packages named in $0)" >&2
        exit 3
    fi
done
command -v go >/dev/null || { echo "go not found (apt-get install golang-go)" >&2; exit 3; }
gp="$out/gopath"
# Debian ships sprig v3 and semver v3 without the /v3 suffix of their module
# paths; GOPATH mode needs the import path as a directory.
mkdir -p "$gp/src/github.com/Masterminds/sprig" "$gp/src/github.com/Masterminds/semver" "$gp/src/derpchart"
ln -sfn "$sys/github.com/Masterminds/sprig" "$gp/src/github.com/Masterminds/sprig/v3"
ln -sfn "$sys/github.com/Masterminds/semver" "$gp/src/github.com/Masterminds/semver/v3"
ln -sfn "$here/render" "$gp/src/derpchart/render"
cd "$gp/src/derpchart/render"
GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$gp:/usr/share/gocode" GOCACHE="$out/gocache" \
    go build -o "$out/render" .
