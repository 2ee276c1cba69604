import { consulClientFor, type ConsulHttpClient, type ResolvedConfig } from '@consul-ecs-ts/core';
import type { CommandContext } from '../command.js';
import { serverAddresses } from './mesh-common.js';

/** HTTP clients for the given Consul server addresses. */
export function consulClients(ctx: CommandContext, config: ResolvedConfig, addresses: string[]): ConsulHttpClient[] {
  return addresses.map((a) => consulClientFor(a, config, ctx.env, { dispatcher: ctx.dispatcher, clock: ctx.clock }));
}

/**
 * For the long-running commands: finds the Consul servers again
 * (`consulServers.hosts`) and makes clients for them, once none of the known
 * ones answers.
 */
export function rediscoverServers(ctx: CommandContext, config: ResolvedConfig): () => Promise<ConsulHttpClient[]> {
  return async () => consulClients(ctx, config, await serverAddresses(config));
}
