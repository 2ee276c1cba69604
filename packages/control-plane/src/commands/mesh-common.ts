import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  ConsulEcsError,
  loadConfig,
  resolveServerAddresses,
  type Logger,
  type ResolvedConfig,
} from '@consul-ecs-ts/core';
import { commandLogger, type CommandContext } from '../command.js';

/** Loads and validates CONSUL_ECS_CONFIG_JSON and makes the logger its logLevel asks for. */
export async function loadCommandConfig(ctx: CommandContext): Promise<{ config: ResolvedConfig; logger: Logger }> {
  const config = await loadConfig({ env: ctx.env });
  return { config, logger: commandLogger(ctx, config.logLevel.toLowerCase()) };
}

/** The Consul server addresses of `consulServers.hosts` (DNS name, IP, or exec= command). */
export function serverAddresses(config: ResolvedConfig): Promise<string[]> {
  return resolveServerAddresses(config.consulServers.hosts);
}

/**
 * node:sea, or undefined before Node.js 20.12. Inside a single executable
 * application built with a code cache, import() is not available, so the CLI
 * bundle (CommonJS) uses require.
 */
async function loadSea(): Promise<{ isSea(): boolean } | undefined> {
  // A computed name: bundlers rewrite a literal 'node:sea' to 'sea', which does not exist.
  const name = ['node', 'sea'].join(':');
  try {
    if (typeof require === 'function') return require(name) as { isSea(): boolean };
    return (await import(name)) as { isSea(): boolean };
  } catch {
    return undefined;
  }
}

/**
 * The self-contained consul-ecs executable that mesh-init copies into the
 * bootstrap dir: this process when it is one (a single executable application),
 * else `CONSUL_ECS_EXECUTABLE`, else the one built beside the CLI bundle
 * (`npm run build:sea`).
 */
export async function selfContainedExecutable(env: Record<string, string | undefined>): Promise<string> {
  if ((await loadSea())?.isSea()) return process.execPath;
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
