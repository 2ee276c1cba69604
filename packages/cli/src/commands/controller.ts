import { runController } from '@consul-ecs-ts/core';
import { runGuarded, type Command } from '../command.js';
import { withConsulServers } from './consul-servers.js';
import { setUpMeshCommand } from './mesh-common.js';

export const controllerCommand: Command = {
  name: 'controller',
  synopsis: 'Sets up the auth method, binding rules and roles in Consul; removes the tokens and services of stopped tasks.',
  usage: 'controller',
  flags: {},
  run: (ctx) =>
    runGuarded(controllerCommand, ctx, async (log) => {
      const { config, logger, addresses } = await setUpMeshCommand(controllerCommand, ctx, log);
      const token = ctx.env.CONSUL_HTTP_TOKEN || undefined;
      logger.addSecret(token);
      await withConsulServers(ctx, config, addresses, (servers) =>
        runController({
          settings: config.controller,
          env: ctx.env,
          ...servers,
          token,
          signal: ctx.signal,
          dispatcher: ctx.dispatcher,
          clock: ctx.clock,
          logger,
        }),
      );
      return 0;
    }),
};
