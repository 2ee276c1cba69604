// V8 flags the CLI sets for itself once it knows its command (main.ts), before the
// command runs. Set at run time rather than on the command line: there they would
// change V8's flag hash before Node.js loads its own modules, whose built-in code
// cache would then no longer match (~30 ms at every start).
import type { CommandEntry } from './cli.js';

/**
 * For the commands that run for the task's life, which do a few requests a second:
 * no optimising JavaScript compilers. Each compiler that runs once stays in the
 * process's resident memory from then on (~2 MB or more).
 */
const LONG_RUNNING_FLAGS = ['--no-opt', '--no-maglev'];

/**
 * undici parses HTTP with a WebAssembly module it compiles at its first connection;
 * with tiering on, V8 then recompiles the parser's one huge function with its
 * optimising compiler on a background thread: ~12 MB in a long-running process,
 * and ~40 ms at a short one's exit, where Node.js waits for the compile.
 */
const WEBASSEMBLY_FLAGS = ['--no-wasm-tier-up', '--no-wasm-dynamic-tiering'];

/** The V8 flags a command runs with, set once it is known. */
export function runtimeV8Flags(command: Pick<CommandEntry, 'longRunning'>): string[] {
  return [...(command.longRunning ? LONG_RUNNING_FLAGS : []), ...WEBASSEMBLY_FLAGS];
}

export function setRuntimeV8Flags(command: CommandEntry | undefined): void {
  if (!command) return;
  const v8 = process.getBuiltinModule('node:v8');
  for (const flag of runtimeV8Flags(command)) v8.setFlagsFromString(flag);
}
