#!/usr/bin/env node
'use strict';
// The whole CLI is one bundled CommonJS file (dist/consul-ecs.cjs): it starts
// fast and is the same script the self-contained executable embeds. On runtimes
// that have it (Node.js 22.1+), V8's compile cache keeps the compiled bundle on
// disk between runs.
try {
  require('node:module').enableCompileCache?.();
} catch {
  // No cache directory: start without one.
}
require('../dist/consul-ecs.cjs');
