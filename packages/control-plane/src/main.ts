import { setFlagsFromString } from 'node:v8';
import { commands, ownsSignals, runCli } from './cli.js';

/**
 * V8 flags set once the command's code is loaded, before its first HTTP request.
 * undici parses HTTP with a WebAssembly module that it compiles on its first
 * connection; with tiering on, V8 then recompiles the parser's one huge function
 * with its optimising compiler on a background thread. That costs a long-running
 * process ~12 MB, and a short one ~40 ms at exit, where Node.js waits for the
 * compile to finish. Passed as command-line flags they would change V8's flag
 * hash before Node.js loads its built-in modules, whose code cache then no longer
 * matches (~30 ms more at start-up); set here, they change nothing already loaded.
 */
const RUNTIME_V8_FLAGS = ['--no-wasm-tier-up', '--no-wasm-dynamic-tiering'];

/** The process entry point: wires argv, env, stdio and signals into the CLI. */
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const controller = new AbortController();
  // The entrypoint commands listen to signals themselves; for them ctx.signal never aborts.
  if (!ownsSignals(argv)) {
    const onSignal = (sig: NodeJS.Signals) => controller.abort(new Error(`received ${sig}`));
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  await commands.find((c) => c.name === argv[0])?.load();
  for (const flag of RUNTIME_V8_FLAGS) setFlagsFromString(flag);
  const code = await runCli(argv, {
    env: process.env,
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    signal: controller.signal,
  });
  // Exit now rather than when idle keep-alive sockets and timers wind down:
  // stdout and stderr are synchronous for files and pipes, so nothing is lost.
  process.exit(code);
}

void main();
