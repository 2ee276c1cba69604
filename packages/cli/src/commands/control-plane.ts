import { runHealthSync, type MeshInitResult } from '@consul-ecs-ts/core';
import { runGuarded, type Command } from '../command.js';
import { consulClients, rediscoverServers } from './consul-servers.js';
import { runMeshInit, setUpMeshCommand } from './mesh-common.js';

export const controlPlaneCommand: Command = {
  name: 'control-plane',
  synopsis: 'mesh-init and health-sync in one long-running process (the consul-ecs 0.7+ control-plane container).',
  usage: 'control-plane',
  flags: {},
  run: (ctx) =>
    runGuarded(controlPlaneCommand, ctx, async (log) => {
      const setup = await setUpMeshCommand(controlPlaneCommand, ctx, log);
      let init: MeshInitResult;
      try {
        // This process stays in the task's network namespace, as root: with transparent proxy its
        // own calls to Consul and the ECS agent stay off Envoy, which exits before health-sync's last ones.
        init = await runMeshInit(ctx, setup, { transparentProxy: { exemptOwnTraffic: true } });
      } catch (err) {
        // SIGTERM while starting: mesh-init has undone its work; that is a clean stop.
        if (ctx.signal.aborted) {
          setup.logger.info('stopped during start-up; nothing is left registered');
          return 0;
        }
        throw err;
      }
      // health-sync starts with the server mesh-init ended with, then the others in their order.
      const known = consulClients(ctx, setup.config, init.addresses);
      const inUse = Math.max(
        0,
        known.findIndex((c) => c.baseUrl.origin === init.client.baseUrl.origin),
      );
      const clients = [...known.slice(inUse), ...known.slice(0, inUse)];
      await init.client.close();
      try {
        await runHealthSync({
          config: setup.config,
          env: ctx.env,
          clients,
          rediscover: rediscoverServers(ctx, setup.config),
          token: init.token,
          logoutOnShutdown: init.loggedIn,
          tokenFile: init.tokenFile,
          signal: ctx.signal,
          task: init.task,
          dispatcher: ctx.dispatcher,
          clock: ctx.clock,
          logger: setup.logger,
        });
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
      return 0;
    }),
};
