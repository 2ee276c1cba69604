import { describeError } from '@consul-ecs-ts/core';
import { parseGoDuration, runAppEntrypoint } from '@consul-ecs-ts/entrypoints';
import { commandHelp, commandLogger, runGuarded, type Command } from '../command.js';
import { parseFlags, UsageError } from '../flags.js';

const flags = {
  'shutdown-delay': {
    type: 'string',
    usage: 'Continue running for this long after receiving SIGTERM. Must be a duration (e.g. "10s").',
    default: '0s',
  },
  'log-level': { type: 'string', usage: 'Log level: trace, debug, info, warn, error.', default: 'info' },
} as const;

/** An application container's entrypoint: delays the application's SIGTERM. Owns its signals (see cli.ts). */
export const appEntrypointCommand: Command = {
  name: 'app-entrypoint',
  synopsis: 'Runs an application; on SIGTERM waits -shutdown-delay (or until it exits), then stops it.',
  usage: 'app-entrypoint [-shutdown-delay <duration>] [--] <command> [args…]',
  flags,
  run: (ctx) =>
    runGuarded(appEntrypointCommand, ctx, async (log) => {
      const { flags: f, args, help } = parseFlags(flags, ctx.argv, ctx.env);
      if (help) {
        ctx.stdout(commandHelp(appEntrypointCommand));
        return 0;
      }
      const text = f['shutdown-delay'] ?? '0s';
      let shutdownDelayMs: number;
      try {
        shutdownDelayMs = parseGoDuration(text);
      } catch (err) {
        throw new UsageError(`invalid value ${JSON.stringify(text)} for flag -shutdown-delay: ${describeError(err).replace(/ \(invalid-duration\)$/, '')}`);
      }
      if (args.length === 0) throw new UsageError('command is required');
      const logger = (log.logger = commandLogger(ctx, f['log-level']));
      return runAppEntrypoint({ command: args, shutdownDelayMs, env: ctx.env, logger, ...(ctx.clock ? { clock: ctx.clock } : {}) });
    }),
};
