import { basename } from 'node:path';
import { findCommand, runCli } from './cli.js';
import { setRuntimeV8Flags } from './v8-flags.js';

/** The process entry point: wires argv, env, stdio and signals into the CLI. */
async function main(): Promise<void> {
  // Called as `consul-dataplane` (the dataplane image's link to this executable): Envoy
  // in consul-dataplane's place, under envoy-entrypoint's shutdown rules.
  const argv = basename(process.argv0) === 'consul-dataplane' ? ['envoy-entrypoint', 'consul-dataplane', ...process.argv.slice(2)] : process.argv.slice(2);
  const command = findCommand(argv[0]);
  const controller = new AbortController();
  // The entrypoint commands listen to signals themselves; for them ctx.signal never aborts.
  if (!command?.ownsSignals) {
    // The first signal starts the command's graceful stop. Another SIGTERM changes
    // nothing (the stop under way goes on: it deregisters and logs out); another
    // SIGINT, a second Ctrl-C, exits at once.
    const onSignal = (sig: NodeJS.Signals) => {
      if (!controller.signal.aborted) controller.abort(new Error(`received ${sig}`));
      else if (sig === 'SIGINT') process.exit(130);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  setRuntimeV8Flags(command);
  const code = await runCli(argv, {
    env: process.env,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    signal: controller.signal,
  });
  // Exit now rather than when idle keep-alive sockets and timers wind down: stdout
  // and stderr are synchronous for files and pipes on Linux, so nothing is lost.
  process.exit(code);
}

void main();
