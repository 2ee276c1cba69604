import type { TaskInfo } from '../ecs/task-metadata.js';
import { ConsulEcsError } from '../util/errors.js';

/**
 * Refuses transparent proxy unless the task metadata shows an awsvpc task on the
 * EC2 launch type, the only place its rules are known to be confined to the
 * task: they rewrite the nat table of whatever network namespace mesh-init runs
 * in, which on a machine outside such a task (bridge or host networking, a
 * developer's machine against a simulated task) is the host's own, and Fargate
 * does not grant NET_ADMIN. terraform-aws-consul-ecs allows transparent proxy
 * only with `requires_compatibilities = ["EC2"]` and `network_mode = "awsvpc"`.
 *
 * Throws a ConsulEcsError with code `transparent-proxy-unsupported`.
 */
export function assertTransparentProxySupported(task: Pick<TaskInfo, 'launchType' | 'networkMode' | 'taskArn'>): void {
  const launchType = task.launchType?.toUpperCase();
  const networkMode = task.networkMode?.toLowerCase();
  if (launchType === 'EC2' && networkMode === 'awsvpc') return;
  const saw = `launch type ${task.launchType || '(none reported)'} and network mode ${task.networkMode || '(none reported)'}`;
  throw new ConsulEcsError(
    'transparent-proxy-unsupported',
    `transparent proxy is enabled, but the ECS task metadata of task ${task.taskArn} shows ${saw}: ` +
      'its iptables rules would rewrite the nat table of the network namespace mesh-init runs in, so they are applied only in awsvpc tasks on the EC2 launch type; nothing was applied or registered. ' +
      'To fix: set transparentProxy.enabled to false in CONSUL_ECS_CONFIG_JSON, or run the task on the EC2 launch type with network mode awsvpc',
  );
}
