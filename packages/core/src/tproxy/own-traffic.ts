import { isIPv4 } from 'node:net';

type Env = Record<string, string | undefined>;

/** Where the ECS agent serves task metadata and credentials to awsvpc tasks. */
const ECS_AGENT_ADDRESS = '169.254.170.2';

/**
 * The destinations a process that stays in the task's network namespace after
 * the rules are in place talks to on its own account: the Consul servers it
 * connected to (IPv4 ones; the rules are IPv4 only) and the ECS agent's task
 * metadata and credentials endpoints (the hosts of ECS_CONTAINER_METADATA_URI_V4,
 * ECS_CONTAINER_METADATA_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI when they
 * are IPv4 addresses, 169.254.170.2 for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI),
 * as /32 CIDRs, each once.
 *
 * The control-plane command is that process: it runs as root (the rules need
 * NET_ADMIN), a user the rules do redirect, and after mesh-init it keeps polling
 * task metadata and calling Consul (health-sync), including after Envoy has
 * exited (the deregistration and logout). Excluding these keeps that traffic
 * off Envoy, as consul-ecs 0.7's control-plane did; terraform's mesh-init +
 * health-sync shape needs none of it (health-sync runs as 5996, which is exempt).
 */
export function ownTrafficCidrs(consulAddresses: readonly string[], env: Env): string[] {
  const hosts = consulAddresses.filter((a) => isIPv4(a));
  for (const name of ['ECS_CONTAINER_METADATA_URI_V4', 'ECS_CONTAINER_METADATA_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI']) {
    const uri = env[name];
    if (!uri) continue;
    try {
      const host = new URL(uri).hostname;
      if (isIPv4(host)) hosts.push(host);
    } catch {
      // not a URL: the command that reads it reports that
    }
  }
  if (env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) hosts.push(ECS_AGENT_ADDRESS);
  return [...new Set(hosts)].map((h) => `${h}/32`);
}
