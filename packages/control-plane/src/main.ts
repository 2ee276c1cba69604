import { runCli } from './cli.js';

/** The process entry point: wires argv, env, stdio and signals into the CLI. */
async function main(): Promise<void> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => controller.abort(new Error(`received ${sig}`));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const code = await runCli(process.argv.slice(2), {
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
