import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BOOTSTRAP_FILES, ConsulEcsError, describeError, runHealthSync } from '@consul-ecs-ts/core';
import { runGuarded, type Command } from '../command.js';
import { consulClients, setUpMeshCommand } from './mesh-common.js';

export const healthSyncCommand: Command = {
  name: 'health-sync',
  synopsis: 'Syncs ECS container health into Consul; on SIGTERM marks checks critical, deregisters and logs out.',
  usage: 'health-sync',
  flags: {},
  run: (ctx) =>
    runGuarded(healthSyncCommand, ctx, async (log) => {
      const { config, logger, addresses } = await setUpMeshCommand(healthSyncCommand, ctx, log);
      let token = ctx.env.CONSUL_HTTP_TOKEN || undefined;
      const fromLogin = !token && config.consulLogin.enabled;
      if (fromLogin) {
        const file = join(config.bootstrapDir, BOOTSTRAP_FILES.serviceToken.name);
        token = (
          await readFile(file, 'utf8').catch((err: unknown) => {
            throw new ConsulEcsError('token-file-unreadable', `cannot read the service token ${file} that mesh-init writes: ${describeError(err)}; run mesh-init first`);
          })
        ).trim();
      }
      logger.addSecret(token);
      const clients = consulClients(ctx, config, addresses);
      try {
        await runHealthSync({ config, env: ctx.env, clients, token, logoutOnShutdown: fromLogin, signal: ctx.signal, dispatcher: ctx.dispatcher, clock: ctx.clock, logger });
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
      return 0;
    }),
};
