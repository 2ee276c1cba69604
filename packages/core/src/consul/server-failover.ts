import type { Logger } from '../util/logger.js';
import type { ConsulHttpClient } from './http-client.js';

/** A client of the Consul API that sends through one server connection at a time (CatalogClient, AclAdmin). */
export interface UsesConsulServer {
  http: ConsulHttpClient;
}

/**
 * An error handler for the long-running commands: on a connection failure
 * (`consul-unreachable`) it points every user at the next server of `clients`,
 * round robin. Other errors, and a single server, change nothing.
 */
export function serverFailover(clients: ConsulHttpClient[], users: UsesConsulServer[], log: Logger): (err: unknown) => void {
  let current = 0;
  return (err) => {
    if (clients.length < 2 || (err as { code?: string }).code !== 'consul-unreachable') return;
    current = (current + 1) % clients.length;
    for (const user of users) user.http = clients[current]!;
    log.info('switching to Consul server', { address: clients[current]!.baseUrl.origin });
  };
}
