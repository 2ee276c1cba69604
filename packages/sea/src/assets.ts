// What the executable carries and how its loader reads it: shared by the build,
// the loader and the training runs, which must compile the bundle alike or V8
// rejects the code caches.

/** The CLI bundle, as an asset of the executable. */
export const BUNDLE_ASSET = 'consul-ecs.cjs';

/** The code cache asset of a command. */
export const cacheAsset = (command: string): string => `consul-ecs.${command}.cache`;

/** The cache a command without one of its own runs with: the top level every command runs. */
export const DEFAULT_CACHE_COMMAND = 'version';

/** Set in the environment, the executable says on stderr whether V8 took its code cache. */
export const CACHE_CHECK_ENV = 'CONSUL_ECS_CODE_CACHE_CHECK';

/** The environment a training run (train-loader.ts) takes its bundle and its cache file from. */
export const TRAIN_BUNDLE_ENV = 'CONSUL_ECS_TRAIN_BUNDLE';
export const TRAIN_CACHE_ENV = 'CONSUL_ECS_TRAIN_CACHE';

/**
 * V8 flags the executable always runs with: a young generation of a fixed 3 MB,
 * which holds what a short command allocates (login and mesh-init run without a
 * garbage collection), and no GC helper threads. None changes V8's flag hash, so
 * Node.js's built-in code cache and ours still apply.
 */
export const EXEC_ARGV = ['--min-semi-space-size=3', '--max-semi-space-size=3', '--single-threaded-gc'];

/**
 * The V8 flags the CLI turns off at run time (packages/cli/src/v8-flags.ts),
 * after its bundle is compiled. A code cache records V8's flags when it is made,
 * and the loader reads it under the defaults: the training runs put these back
 * before they save the cache.
 */
export const RUNTIME_V8_FLAGS = ['opt', 'maglev', 'wasm-tier-up', 'wasm-dynamic-tiering'];

const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname) {';
const WRAPPER_TAIL = '\n})';

/**
 * The bundle's source as the executable carries and compiles it: in Node.js's
 * CommonJS function wrapper, and ASCII only (esbuild escapes non-ASCII in code;
 * what is left is in comments), so the loader makes the source string from the
 * asset's bytes as Latin-1.
 */
export function bundleSource(text: string): string {
  return WRAPPER_HEAD + text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) + WRAPPER_TAIL;
}

/** What compiling the bundle gives: its function, called as Node.js calls a CommonJS module. */
export type BundleFunction = (exports: object, require: NodeJS.Require, module: { exports: object }, filename: string, dirname: string) => void;
