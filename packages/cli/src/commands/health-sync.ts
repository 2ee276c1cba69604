import { runHealthSyncContainer } from '@consul-ecs-ts/core';
import { runGuarded, type Command } from '../command.js';
import { withConsulServers } from './consul-servers.js';
import { setUpMeshCommand } from './mesh-common.js';

export const healthSyncCommand: Command = {
  name: 'health-sync',
  synopsis: 'Syncs ECS container health into Consul; on SIGTERM marks checks critical, deregisters and logs out.',
  usage: 'health-sync',
  flags: {},
  run: (ctx) =>
    runGuarded(healthSyncCommand, ctx, async (log) => {
      // Started beside the app, and not essential to the task: it waits for the Consul
      // servers (DNS, reachability) for as long as it takes, as consul-ecs's does.
      const { config, logger, addresses } = await setUpMeshCommand(healthSyncCommand, ctx, log, { waitForServers: true });
      await withConsulServers(ctx, config, addresses, (servers) =>
        runHealthSyncContainer({ config, env: ctx.env, ...servers, signal: ctx.signal, dispatcher: ctx.dispatcher, clock: ctx.clock, logger }),
      );
      return 0;
    }),
};
