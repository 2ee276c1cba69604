import { consulClientFor, meshInit, runHealthSync } from '@consul-ecs-ts/core';
import { runGuarded, type Command } from '../command.js';
import { parseFlags, UsageError } from '../flags.js';
import { loadCommandConfig, selfContainedExecutable, serverAddresses } from './mesh-common.js';

export const controlPlaneCommand: Command = {
  name: 'control-plane',
  synopsis: 'mesh-init and health-sync in one long-running process (the consul-ecs 0.7+ control-plane container).',
  usage: 'control-plane',
  flags: {},
  run: (ctx) =>
    runGuarded(controlPlaneCommand, ctx, async (log) => {
      const { args } = parseFlags(controlPlaneCommand.flags, ctx.argv);
      if (args.length) throw new UsageError(`unexpected argument: ${args[0]}`);
      const { config, logger } = await loadCommandConfig(ctx);
      log.logger = logger;
      const addresses = await serverAddresses(config);
      let init;
      try {
        init = await meshInit({
          config,
          env: ctx.env,
          addresses,
          executable: await selfContainedExecutable(ctx.env),
              dispatcher: ctx.dispatcher,
          clock: ctx.clock,
          logger,
          signal: ctx.signal,
        });
      } catch (err) {
        // SIGTERM while starting: mesh-init has undone its work; that is a clean stop.
        if (ctx.signal.aborted) {
          logger.info('stopped during start-up; nothing is left registered');
          return 0;
        }
        throw err;
      }
      const others = addresses.slice(1).map((a) => consulClientFor(a, config, ctx.env, { dispatcher: ctx.dispatcher, clock: ctx.clock }));
      const clients = [init.client, ...others];
      try {
        await runHealthSync({
          config,
          env: ctx.env,
          clients,
          token: init.token,
          logoutOnShutdown: init.loggedIn,
          signal: ctx.signal,
          task: init.task,
          dispatcher: ctx.dispatcher,
          clock: ctx.clock,
          logger,
        });
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
      return 0;
    }),
};
