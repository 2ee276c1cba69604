// A simulated mesh task for control-plane tests: the CONSUL_ECS_CONFIG_JSON a
// terraform mesh-task would give, pointed at the test stack, and the container
// environment (ECS agent simulator, config, the built self-contained executable).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { DATAPLANE_RELEASES, dataplaneAccepts } from '../../scripts/lib/dataplane.ts';
import type { LoginStack } from './login-stack.ts';

export const SEA = fileURLToPath(new URL('../../packages/cli/dist/sea/consul-ecs', import.meta.url));

export function meshConfig(stack: LoginStack, bootstrapDir: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    bootstrapDir,
    logLevel: 'DEBUG',
    consulServers: {
      hosts: '127.0.0.1',
      defaults: { tls: false },
      http: { https: false, port: stack.consul.ports.http },
      grpc: { port: stack.consul.ports.grpc },
    },
    consulLogin: { enabled: true, stsEndpoint: stack.moto.url, serverIdHeaderValue: 'consul.test.local' },
    service: { name: 'web', port: 8080, tags: ['v1'], meta: { team: 'payments' } },
    proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
    healthSyncContainers: ['app'],
    transparentProxy: { enabled: false },
    ...over,
  };
}

export function meshEnv(sim: EcsAgentSimulator, config: Record<string, unknown>, extra: Record<string, string> = {}): Record<string, string> {
  return { ...sim.containerEnv(), CONSUL_ECS_CONFIG_JSON: JSON.stringify(config), CONSUL_ECS_EXECUTABLE: SEA, ...extra };
}

/**
 * Registers the cluster's synthetic node, as the consul-ecs controller does once
 * per cluster: service tokens may then register services on it (SkipNodeUpdate)
 * without node:write.
 */
export async function registerClusterNode(stack: LoginStack, clusterArn: string): Promise<void> {
  await stack.consul.api('PUT', '/v1/catalog/register', { Node: clusterArn, Address: '127.0.0.1', NodeMeta: { 'synthetic-node': 'true' } });
}

/** Polls until `probe` returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
}

/**
 * Waits until a running process's captured output matches `pattern`, then asserts
 * it (showing the output if it never did). The output reaches the test on its own
 * pipe: what a test sees in Consul may come before the lines the process logged
 * before it made that change.
 */
export async function outputMatches(output: () => string, pattern: RegExp, timeoutMs = 5000): Promise<void> {
  await eventually(`output matching ${pattern}`, timeoutMs, async () => (pattern.test(output()) ? true : undefined)).catch(() => {});
  assert.match(output(), pattern);
}

/**
 * The consul-dataplane.json mesh-init wrote to `dir`, parsed, once every release
 * of consul-dataplane the peers install has decoded it with its own config types
 * (unknown keys refused) and built its runtime config from it.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the tests read the parsed document field by field, as JSON.parse gives it
export async function readDataplaneConfig(dir: string): Promise<any> {
  const file = join(dir, 'consul-dataplane.json');
  for (const release of DATAPLANE_RELEASES) await dataplaneAccepts(file, release);
  return JSON.parse(await readFile(file, 'utf8'));
}
