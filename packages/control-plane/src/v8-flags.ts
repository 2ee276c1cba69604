// V8 flags the CLI sets for itself, per command. Imported first by main.ts, so
// that the top level below runs before any other module of the CLI is loaded.
import { llhttpPrecompiling } from './llhttp-precompiled.js';

/**
 * Commands that run for the task's life. They do a few requests a second, so
 * they run without V8's optimising JavaScript compilers: each compiler that runs
 * once stays in the process's resident memory from then on (~2 MB or more).
 * Set before anything loads, at the price of Node.js's built-in code cache (the
 * flags change V8's flag hash): ~30 ms once, at the start of a long process.
 */
const LONG_RUNNING = new Set(['health-sync', 'control-plane', 'controller', 'envoy-entrypoint', 'app-entrypoint']);
if (LONG_RUNNING.has(process.argv[2] ?? '')) {
  for (const flag of ['--no-opt', '--no-maglev']) setFlagsFromString(flag);
}

/**
 * Commands that make no HTTP request, so compile no WebAssembly: they need none of
 * the flags below. node:v8 is loaded only when a flag is set: it loads Node.js's
 * streams (for heap snapshots), ~3 ms of `version`'s start-up.
 */
const NO_WEBASSEMBLY = new Set(['version', 'net-dial']);

/**
 * Flags for every command that makes HTTP requests, set by main.ts once the
 * command's code is loaded and before its first request. undici parses HTTP with
 * a WebAssembly module that it compiles on its first connection; with tiering on, V8 then recompiles
 * the parser's one huge function with its optimising compiler on a background
 * thread. That costs a long-running process ~12 MB, and a short one ~40 ms at
 * exit, where Node.js waits for the compile to finish. Given on the command line
 * they would change V8's flag hash before Node.js loads its built-in modules, whose
 * code cache then no longer matches (~30 ms more at start-up); set here, they
 * change nothing already loaded, but every built-in module loaded after them is
 * compiled from source. So they are not set when the executable compiled the
 * parser ahead with them (src/llhttp-precompiled.ts): no other WebAssembly is
 * ever compiled.
 */
export function setRuntimeV8Flags(command: string | undefined): void {
  if (llhttpPrecompiling() || NO_WEBASSEMBLY.has(command ?? '')) return;
  for (const flag of ['--no-wasm-tier-up', '--no-wasm-dynamic-tiering']) setFlagsFromString(flag);
}

function setFlagsFromString(flag: string): void {
  process.getBuiltinModule('node:v8').setFlagsFromString(flag);
}
