import { ConsulEcsError, TaskMetadataClient, type EcsTaskMetadata } from '@consul-ecs-ts/core';
import { envoyInPlaceOfConsulDataplane, runEnvoyEntrypoint } from '@consul-ecs-ts/entrypoints';
import { commandHelp, commandLogger, runGuarded, type Command } from '../command.js';
import { parseFlags, UsageError } from '../flags.js';

const flags = {
  'log-level': { type: 'string', usage: 'Log level: trace, debug, info, warn, error.', default: 'info' },
} as const;

/** Envoy's entrypoint: it must outlive the application through the task's shutdown. Owns its signals (see cli.ts). */
export const envoyEntrypointCommand: Command = {
  name: 'envoy-entrypoint',
  synopsis: 'Runs Envoy or consul-dataplane; on SIGTERM keeps it running until the application containers stop, then stops it.',
  usage: 'envoy-entrypoint [flags] [--] <command> [args…]',
  flags,
  run: (ctx) =>
    runGuarded(envoyEntrypointCommand, ctx, async (log) => {
      const { flags: f, args, help } = parseFlags(flags, ctx.argv, ctx.env);
      if (help) {
        ctx.stdout(commandHelp(envoyEntrypointCommand));
        return 0;
      }
      if (args.length === 0) throw new UsageError('command is required');
      const logger = (log.logger = commandLogger(ctx, f['log-level']));
      const baseUrl = ctx.env.ECS_CONTAINER_METADATA_URI_V4;
      let taskMetadata: () => Promise<EcsTaskMetadata>;
      if (baseUrl) {
        // One attempt a poll, bounded: the poll itself repeats every second.
        const client = new TaskMetadataClient({ baseUrl, dispatcher: ctx.dispatcher, clock: ctx.clock, maxAttempts: 1, timeoutMs: 2000 });
        taskMetadata = () => client.task();
      } else {
        logger.warn('ECS_CONTAINER_METADATA_URI_V4 is not set: after SIGTERM the command keeps running until it exits or is killed');
        taskMetadata = () => Promise.reject(new ConsulEcsError('ecs-metadata-missing', 'ECS_CONTAINER_METADATA_URI_V4 is not set; run inside an ECS task'));
      }
      // In the dataplane image, `consul-dataplane` is this executable: Envoy runs in its place.
      const envoy = envoyInPlaceOfConsulDataplane(args, { env: ctx.env });
      if (envoy) logger.info(`consul-dataplane is consul-ecs here: running ${envoy.join(' ')}`);
      return runEnvoyEntrypoint({ command: envoy ?? args, taskMetadata, env: ctx.env, logger, ...(ctx.clock ? { clock: ctx.clock } : {}) });
    }),
};
