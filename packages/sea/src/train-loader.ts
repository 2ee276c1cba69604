// A training run of one command (train.ts starts it with the pinned runtime and
// the executable's V8 flags, as `node train-loader.cjs <command> <args…>`): the
// bundle is compiled as the executable's loader compiles it, the command runs as
// it would in the executable, and when the process exits the bytecode V8 made
// for what it ran is saved as the command's code cache.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import { BUNDLE_ASSET, bundleSource, RUNTIME_V8_FLAGS, TRAIN_BUNDLE_ENV, TRAIN_CACHE_ENV, type BundleFunction } from './assets.js';

const bundlePath = process.env[TRAIN_BUNDLE_ENV];
const cachePath = process.env[TRAIN_CACHE_ENV];
if (!bundlePath || !cachePath) throw new Error(`train-loader: set ${TRAIN_BUNDLE_ENV} and ${TRAIN_CACHE_ENV}`);
const script = new Script(bundleSource(readFileSync(bundlePath, 'utf8')), { filename: BUNDLE_ASSET });
process.on('exit', () => {
  // The loader reads the cache under V8's default flags; the CLI turned some off.
  for (const flag of RUNTIME_V8_FLAGS) setFlagsFromString(`--${flag}`);
  writeFileSync(cachePath, script.createCachedData());
});
const cli = { exports: {} };
(script.runInThisContext() as BundleFunction)(cli.exports, createRequire(bundlePath), cli, bundlePath, dirname(bundlePath));
