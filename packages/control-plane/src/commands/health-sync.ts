import { join } from 'node:path';
import {
  aclLogout,
  BOOTSTRAP_FILES,
  describeError,
  loginAsTask,
  readTokenFile,
  runHealthSync,
  TaskMetadataClient,
  taskInfo,
  type ConsulHttpClient,
  type Logger,
  type ResolvedConfig,
  type TaskInfo,
} from '@consul-ecs-ts/core';
import { runGuarded, type Command, type CommandContext } from '../command.js';
import { consulClients, rediscoverServers } from './consul-servers.js';
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
      const clients = consulClients(ctx, config, addresses);
      try {
        let token = ctx.env.CONSUL_HTTP_TOKEN || undefined;
        const fromLogin = !token && config.consulLogin.enabled;
        let tokenFile: string | undefined;
        let task: TaskInfo | undefined;
        if (fromLogin) {
          const file = join(config.bootstrapDir, BOOTSTRAP_FILES.serviceToken.name);
          const written = await readTokenFile(file).catch((err: unknown) => {
            logger.info('cannot read the service token mesh-init wrote; logging in with the task role instead', { file, reason: describeError(err) });
            return '';
          });
          if (written) {
            token = written;
            tokenFile = file;
          } else {
            ({ token, task } = await ownLogin(ctx, config, clients[0]!, logger));
          }
        }
        logger.addSecret(token);
        const ownToken = fromLogin && !tokenFile ? token : undefined;
        await runHealthSync({
          config,
          env: ctx.env,
          clients,
          rediscover: rediscoverServers(ctx, config),
          token,
          logoutOnShutdown: fromLogin,
          tokenFile,
          task,
          startDeadlineMs: Number.POSITIVE_INFINITY,
          signal: ctx.signal,
          dispatcher: ctx.dispatcher,
          clock: ctx.clock,
          logger,
        }).catch(async (err: unknown) => {
          // Its own login token is logged out at shutdown; when health-sync fails, now.
          if (ownToken) await aclLogout(clients[0]!, ownToken, { retryDeadlineMs: 5000 }).catch(() => {});
          throw err;
        });
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
      return 0;
    }),
};

/**
 * health-sync's own login, as consul-ecs's health-sync always does: for when
 * mesh-init's token file cannot be read here (terraform's mesh-task runs
 * mesh-init as root with transparent proxy, and health-sync as another user).
 */
async function ownLogin(ctx: CommandContext, config: ResolvedConfig, client: ConsulHttpClient, logger: Logger): Promise<{ token: string; task: TaskInfo }> {
  const metadata = new TaskMetadataClient({ baseUrl: ctx.env.ECS_CONTAINER_METADATA_URI_V4 ?? '', dispatcher: ctx.dispatcher, clock: ctx.clock });
  const task = taskInfo(await metadata.task());
  const acl = await loginAsTask({
    config,
    env: ctx.env,
    task,
    client,
    deadlineMs: Number.POSITIVE_INFINITY,
    dispatcher: ctx.dispatcher,
    clock: ctx.clock,
    logger,
    signal: ctx.signal,
  });
  return { token: acl.SecretID, task };
}
