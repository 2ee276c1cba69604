import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  ConsulEcsError,
  describeError,
  loadConfig,
  meshInit,
  resolveServerAddresses,
  retry,
  type Logger,
  type MeshInitOptions,
  type MeshInitResult,
  type ResolvedConfig,
} from '@consul-ecs-ts/core';
import { ExecutableCopy } from '@consul-ecs-ts/sea';
import { findCommand } from '../cli.js';
import { commandLogger, type Command, type CommandContext, type LogRef } from '../command.js';
import { parseFlags, UsageError } from '../flags.js';

export interface MeshCommandSetup {
  config: ResolvedConfig;
  logger: Logger;
  /** Consul server addresses, in order of preference. */
  addresses: string[];
  /** The executable's copy into the bootstrap dir, under way, for the commands that copy it (runMeshInit installs it). */
  executable?: ExecutableCopy;
}

/**
 * What mesh-init, health-sync and control-plane do first: take no arguments,
 * load and validate the config, log at its level, start copying the executable
 * into the bootstrap dir (the commands that copy it), and resolve the Consul
 * servers (with `waitForServers`, retrying until they resolve or a signal comes).
 */
export async function setUpMeshCommand(cmd: Command, ctx: CommandContext, log: LogRef, opts: { waitForServers?: boolean } = {}): Promise<MeshCommandSetup> {
  const { args } = parseFlags(cmd.flags, ctx.argv);
  if (args.length) throw new UsageError(`unexpected argument: ${args[0]}`);
  const { config, logger } = await loadCommandConfig(ctx);
  log.logger = logger;
  const executable = findCommand(cmd.name)?.copiesExecutable ? ExecutableCopy.start(await selfContainedExecutable(ctx.env), config.bootstrapDir) : undefined;
  try {
    const addresses = opts.waitForServers
      ? await retry(() => serverAddresses(config, ctx), {
          signal: ctx.signal,
          clock: ctx.clock,
          maxDelayMs: 10_000,
          // A DNS name without records yet, or a discovery command that failed, may work later.
          retryable: (err) => !['consul-servers-hosts-empty', 'consul-servers-discover-invalid'].includes((err as { code?: string }).code ?? ''),
          onRetry: (err) => logger.warn('cannot find the Consul servers yet; retrying', { error: describeError(err) }),
        })
      : await serverAddresses(config, ctx);
    return { config, logger, addresses, executable };
  } catch (err) {
    await executable?.discard();
    throw err;
  }
}

/** mesh-init as the commands run it, with the executable's copy that setUpMeshCommand started. */
export async function runMeshInit(ctx: CommandContext, setup: MeshCommandSetup, opts: Pick<MeshInitOptions, 'transparentProxy'> = {}): Promise<MeshInitResult> {
  return meshInit({
    ...setup,
    ...opts,
    env: ctx.env,
    dispatcher: ctx.dispatcher,
    clock: ctx.clock,
    signal: ctx.signal,
  });
}

/** Loads and validates CONSUL_ECS_CONFIG_JSON and makes the logger its logLevel asks for. */
export async function loadCommandConfig(ctx: CommandContext): Promise<{ config: ResolvedConfig; logger: Logger }> {
  const config = await loadConfig({ env: ctx.env });
  return { config, logger: commandLogger(ctx, config.logLevel.toLowerCase()) };
}

/**
 * The Consul server addresses of `consulServers.hosts` (DNS name, IP, or exec=
 * command); `exec=discover … provider=aws` calls EC2 with the command's
 * environment, dispatcher and clock.
 */
export function serverAddresses(config: ResolvedConfig, ctx: Pick<CommandContext, 'env' | 'dispatcher' | 'clock' | 'signal'>): Promise<string[]> {
  return resolveServerAddresses(config.consulServers.hosts, { env: ctx.env, dispatcher: ctx.dispatcher, clock: ctx.clock, signal: ctx.signal });
}

/**
 * The self-contained consul-ecs executable that mesh-init copies into the
 * bootstrap dir: this process when it is one (a single executable application),
 * else `CONSUL_ECS_EXECUTABLE`, else the one built beside the CLI bundle
 * (`npm run build:sea`).
 */
export async function selfContainedExecutable(env: Record<string, string | undefined>): Promise<string> {
  if (process.getBuiltinModule('node:sea')?.isSea()) return process.execPath;
  if (env.CONSUL_ECS_EXECUTABLE) return env.CONSUL_ECS_EXECUTABLE;
  const script = process.argv[1] ? realpathSync(process.argv[1]) : '';
  const candidates = [join(dirname(script), 'sea/consul-ecs'), join(dirname(script), '../dist/sea/consul-ecs')];
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw new ConsulEcsError(
      'executable-missing',
      'no self-contained consul-ecs executable to copy into the bootstrap dir (looked for ' +
        `${candidates.join(', ')}); build it with "npm run build:sea" or set CONSUL_ECS_EXECUTABLE`,
    );
  }
  return found;
}
