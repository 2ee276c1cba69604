// The executable's entry (the script a single executable application runs):
// compiles the CLI bundle with the V8 code cache of the command it runs, made at
// build time (train.ts), and runs it. The assets are read in place.
import { BUNDLE_ASSET, cacheAsset, CACHE_CHECK_ENV, DEFAULT_CACHE_COMMAND, type BundleFunction } from './assets.js';

const sea = process.getBuiltinModule('node:sea');
/** An asset's bytes, in place. */
const asset = (key: string) => sea.getRawAsset(key) as ArrayBuffer;
const { Script } = process.getBuiltinModule('node:vm');
const { dirname } = process.getBuiltinModule('node:path');

/** The code cache of `command`, or the default one when it has none of its own. */
function codeCacheFor(command: string | undefined): { name: string; data: Uint8Array } {
  if (command && command !== DEFAULT_CACHE_COMMAND) {
    try {
      return { name: command, data: new Uint8Array(asset(cacheAsset(command))) };
    } catch {
      // No cache of its own: the long-running commands, or no command at all.
    }
  }
  return { name: DEFAULT_CACHE_COMMAND, data: new Uint8Array(asset(cacheAsset(DEFAULT_CACHE_COMMAND))) };
}

const cache = codeCacheFor(process.argv[2]);
const source = Buffer.from(asset(BUNDLE_ASSET)).toString('latin1');
const script = new Script(source, { filename: BUNDLE_ASSET, cachedData: cache.data });
if (process.env[CACHE_CHECK_ENV]) process.stderr.write(`code cache ${cache.name}: ${script.cachedDataRejected ? 'rejected' : 'accepted'}\n`);
const bundle = script.runInThisContext() as BundleFunction;
const cli = { exports: {} };
bundle(cli.exports, require, cli, process.execPath, dirname(process.execPath));
