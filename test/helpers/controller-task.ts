// The controller as the integration tests run it: its own task running in moto's
// ECS (with a role that may list and describe the cluster's tasks) and simulated
// by the ECS agent simulator, its config and its container environment.
import assert from 'node:assert/strict';
import type { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import type { LoginStack } from './login-stack.ts';

export const CLUSTER = 'test-cluster';
const ECS_ACTIONS = ['ecs:ListTasks', 'ecs:DescribeTasks'];

/** The controller's config: `consulServers` as given, else plain HTTP to the stack's Consul. */
export function controllerConfig(stack: LoginStack, consulServers?: Record<string, unknown>) {
  return {
    bootstrapDir: '/consul',
    logLevel: 'DEBUG',
    controller: { iamRolePath: '/consul-ecs/', partitionsEnabled: false, partition: '' },
    consulServers: consulServers ?? {
      hosts: '127.0.0.1',
      defaults: { tls: false },
      http: { https: false, port: stack.consul.ports.http },
      grpc: { port: stack.consul.ports.grpc },
    },
  };
}

/** The controller's container environment: its task (simulated), the bootstrap token, ECS at moto. */
export function controllerEnv(stack: LoginStack, sim: EcsAgentSimulator, config = controllerConfig(stack), extra: Record<string, string> = {}) {
  return {
    ...sim.containerEnv(),
    CONSUL_ECS_CONFIG_JSON: JSON.stringify(config),
    CONSUL_HTTP_TOKEN: stack.consul.managementToken,
    AWS_ENDPOINT_URL_ECS: stack.moto.url,
    ...extra,
  };
}

/** The controller's own task: running in moto's ECS cluster, its role allowed to list and describe the cluster's tasks. */
export async function controllerTask(stack: LoginStack): Promise<{ clusterArn: string; sim: EcsAgentSimulator }> {
  const clusterArn = await stack.moto.admin.createCluster(CLUSTER);
  const [own] = await stack.moto.admin.runTasks(CLUSTER, 'consul-ecs-controller');
  const role = await stack.role('controller-task', { path: '/ecs/', service: null, allowGetRole: false, allowActions: ECS_ACTIONS });
  const sim = await stack.simulator(role.arn, {
    cluster: CLUSTER,
    family: 'consul-ecs-controller',
    taskId: own!.taskArn!.split('/').pop()!,
    containers: [{ name: 'consul-ecs-controller', hasHealthCheck: false }],
  });
  assert.equal(sim.clusterArn, clusterArn);
  return { clusterArn, sim };
}
