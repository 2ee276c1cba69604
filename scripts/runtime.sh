#!/usr/bin/env bash
# The Node.js runtime we ship (images, self-contained executable) and test on:
# a supported LTS, pinned, taken from the node-linux-<arch> package of the npm
# registry and cached outside the repo. Prints the path of its `node` binary.
# Usage: bash scripts/runtime.sh [x64|arm64]   (default: the machine's architecture)
set -euo pipefail
NODE_LTS_VERSION="${NODE_LTS_VERSION:-24.22.3}"
PEERS_DIR="${CONSUL_ECS_PEERS_DIR:-$HOME/.cache/consul-ecs-ts/peers}"
native=x64
case "$(uname -m)" in aarch64 | arm64) native=arm64 ;; esac
arch="${1:-$native}"
case "$arch" in
  x64 | arm64) ;;
  *)
    echo "runtime: unknown architecture $arch (x64 or arm64)" >&2
    exit 2
    ;;
esac
# The x64 runtime keeps the directory it always had; another architecture's beside it.
dest="$PEERS_DIR/runtime/node-$NODE_LTS_VERSION"
[ "$arch" = x64 ] || dest="$dest-$arch"
bin="$dest/node_modules/node-linux-$arch/bin/node"
# The version is checked where the binary can run; another architecture's by its package.
installed_version() {
  if [ "$arch" = "$native" ]; then
    "$bin" --version 2>/dev/null || true
  else
    [ -x "$bin" ] && node -p "'v' + require('$dest/node_modules/node-linux-$arch/package.json').version" 2>/dev/null || true
  fi
}
if [ ! -x "$bin" ] || [ "$(installed_version)" != "v$NODE_LTS_VERSION" ]; then
  echo "runtime: installing node-linux-$arch@$NODE_LTS_VERSION" >&2
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp"
  # Another architecture's with --force: npm refuses a package whose "cpu" is not the machine's.
  force=()
  [ "$arch" = "$native" ] || force=(--force)
  (cd "$dest.tmp" && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error "${force[@]}" \
    --prefix "$dest.tmp" "node-linux-$arch@$NODE_LTS_VERSION" >&2)
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
fi
echo "$bin"
