import { meshInit } from '@consul-ecs-ts/core';
import { runGuarded, type Command } from '../command.js';
import { parseFlags, UsageError } from '../flags.js';
import { loadCommandConfig, selfContainedExecutable, serverAddresses } from './mesh-common.js';

export const meshInitCommand: Command = {
  name: 'mesh-init',
  synopsis: 'Logs in, registers the service and its sidecar (or the gateway) and writes the bootstrap files.',
  usage: 'mesh-init',
  flags: {},
  run: (ctx) =>
    runGuarded(meshInitCommand, ctx, async (log) => {
      const { args } = parseFlags(meshInitCommand.flags, ctx.argv);
      if (args.length) throw new UsageError(`unexpected argument: ${args[0]}`);
      const { config, logger } = await loadCommandConfig(ctx);
      log.logger = logger;
      const result = await meshInit({
        config,
        env: ctx.env,
        addresses: await serverAddresses(config),
        executable: await selfContainedExecutable(ctx.env),
        dispatcher: ctx.dispatcher,
        clock: ctx.clock,
        logger,
        signal: ctx.signal,
      });
      await result.client.close();
      return 0;
    }),
};
