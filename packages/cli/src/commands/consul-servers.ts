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
  return async () => consulClients(ctx, config, await serverAddresses(config, ctx));
}

/**
 * Runs a long-running command's work with clients for the Consul servers, in
 * order of preference, and the way to find them again; closes the clients after.
 */
export async function withConsulServers<T>(
  ctx: CommandContext,
  config: ResolvedConfig,
  addresses: string[],
  work: (servers: { clients: ConsulHttpClient[]; rediscover: () => Promise<ConsulHttpClient[]> }) => Promise<T>,
): Promise<T> {
  const clients = consulClients(ctx, config, addresses);
  try {
    return await work({ clients, rediscover: rediscoverServers(ctx, config) });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}
