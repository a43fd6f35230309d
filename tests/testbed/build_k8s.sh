#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager, kubectl and the node binaries (kubelet,
# kube-scheduler, kube-proxy) from Go modules (pinned),
# caching binaries, module cache and build cache outside the repository.
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces staging modules with ./staging
# paths, so we build from a wrapper module that replaces each with its published v0.Y.Z.
#
# Environment: K8S_VERSION, ETCD_VERSION (pins below are the defaults tests/testbed/kube.py reads),
# SMC_CACHE_DIR / XDG_CACHE_HOME (cache root), SMC_K8S_BINARIES (space-separated subset to build;
# the default is the control plane, the node binaries are built when named).
# Already-built binaries are reused; a stamp records the versions and Go toolchain of the last build.
# Prints the binary directory on stdout; progress goes to stderr.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE="${SMC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/smc-stream}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
WANTED="${SMC_K8S_BINARIES:-etcd kube-apiserver kube-controller-manager kubectl}"
export GOMODCACHE="${GOMODCACHE:-$CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go/build}"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
mkdir -p "$BIN"

log() { printf '[build_k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
wanted() { [[ " $WANTED " == *" $1 "* ]]; }
missing() { wanted "$1" && [ ! -x "$BIN/$1" ]; }

# One build per cache at a time (two `make test` runs on one machine would otherwise race).
exec 9>"$CACHE/k8s-build.sh.lock"
flock 9

BUILT=0
timed_build() { # name, then the go build command run in the wrapper directory
  local name=$1 started=$SECONDS
  shift
  log "building $name"
  "$@"
  log "built $name in $((SECONDS - started))s"
  BUILT=$((BUILT + 1))
}

build_kubernetes() {
  local cmds=() cmd
  for cmd in kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy; do
    if missing "$cmd"; then cmds+=("$cmd"); fi
  done
  [ ${#cmds[@]} -gt 0 ] || return 0
  local wrap="$CACHE/k8s-$K8S_VERSION/wrapper"
  mkdir -p "$wrap"
  local staging_minor="v0.${K8S_VERSION#v1.}"
  log "downloading k8s.io/kubernetes@$K8S_VERSION"
  local kdir
  kdir=$(cd "$wrap" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -n "$kdir" ] || { log "could not locate module dir"; exit 1; }
  {
    echo "module smcstream/k8swrapper"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kdir/go.mod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # every staging module replaced with its published version
    grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$kdir/go.mod" | awk -v v="$staging_minor" '{print "replace " $1 " => " $1 " " v}'
  } > "$wrap/go.mod"
  cat > "$wrap/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
  (cd "$wrap" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$wrap" && go get "k8s.io/kubernetes@$K8S_VERSION" >/dev/null)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
  for cmd in "${cmds[@]}"; do
    timed_build "$cmd" bash -c 'cd "$1" && go build -trimpath -ldflags "$2" -o "$3.tmp" "k8s.io/kubernetes/cmd/$4" && mv "$3.tmp" "$3"' \
      _ "$wrap" "$ld" "$BIN/$cmd" "$cmd"
  done
}

build_etcd() {
  missing etcd || return 0
  local wrap="$CACHE/etcd-$ETCD_VERSION/wrapper"
  mkdir -p "$wrap"
  log "downloading go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  local edir
  edir=$(cd "$wrap" && go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -n "$edir" ] || { log "could not locate etcd module dir"; exit 1; }
  {
    echo "module smcstream/etcdwrapper"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$edir/go.mod")"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    grep -E '^\s*go.etcd.io/etcd/[a-z0-9/]+ => \.\./' "$edir/go.mod" | awk -v v="$ETCD_VERSION" '{print "replace " $1 " => " $1 " " v}'
  } > "$wrap/go.mod"
  cat > "$wrap/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$wrap" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null)
  timed_build etcd bash -c 'cd "$1" && go build -trimpath -ldflags "-s -w" -o "$2.tmp" "go.etcd.io/etcd/server/v3" && mv "$2.tmp" "$2"' \
    _ "$wrap" "$BIN/etcd"
}

started=$SECONDS
build_etcd
build_kubernetes
[ "$BUILT" -eq 0 ] && [ -f "$BIN/.stamp" ] || {
  echo "k8s=$K8S_VERSION"
  echo "etcd=$ETCD_VERSION"
  echo "go=$(go env GOVERSION)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$BIN/.stamp"
log "done in $((SECONDS - started))s: $BIN"
echo "$BIN"
