import { LIST_MAX_RESPONSE_BYTES, type ConsulHttpClient } from '../consul/http-client.js';
import { ConsulEcsError } from '../util/errors.js';
import type { AgentService, CatalogRegistration, HealthCheck } from './types.js';

/** Catalog calls made with a token (agentless: straight to the servers). */
export class CatalogClient {
  constructor(
    /** The server connection in use; replaced when health-sync fails over to another server. */
    public http: ConsulHttpClient,
    /** Returns the ACL token to use now (it may change, e.g. after a fresh login). */
    readonly token: () => string | undefined,
  ) {}

  /** `PUT /v1/catalog/register`. */
  async register(reg: CatalogRegistration, opts: { signal?: AbortSignal; retryDeadlineMs?: number } = {}): Promise<void> {
    await this.http.send({ method: 'PUT', path: '/v1/catalog/register', body: reg, token: this.token(), ...opts });
  }

  /** `PUT /v1/catalog/deregister` of one service instance of a node. */
  async deregisterService(
    node: string,
    serviceId: string,
    scope: { namespace?: string; partition?: string } = {},
    opts: { signal?: AbortSignal; retryDeadlineMs?: number } = {},
  ): Promise<void> {
    await this.http.send({
      method: 'PUT',
      path: '/v1/catalog/deregister',
      body: { Node: node, ServiceID: serviceId, Namespace: scope.namespace, Partition: scope.partition },
      token: this.token(),
      ...opts,
    });
  }

  /** The services of a node (`GET /v1/catalog/node-services/:node`), optionally filtered. */
  async nodeServices(
    node: string,
    filter?: string,
    scope: { namespace?: string; partition?: string } = {},
    opts: { mergeCentralConfig?: boolean } = {},
  ): Promise<AgentService[]> {
    const res = await this.http.call<unknown>({
      path: `/v1/catalog/node-services/${encodeURIComponent(node)}`,
      query: { filter, ns: scope.namespace, partition: scope.partition, 'merge-central-config': opts.mergeCentralConfig },
      token: this.token(),
      // The cluster's node holds every service instance of the cluster.
      maxResponseBytes: LIST_MAX_RESPONSE_BYTES,
    });
    if (res === undefined || res === null) return [];
    const services = isObject(res) ? (res.Services ?? []) : undefined;
    return objects<AgentService>(services, 'GET /v1/catalog/node-services', 'an object whose Services is an array of services');
  }

  /** The checks of one service instance (`GET /v1/health/checks/:service?filter=ServiceID==…`). */
  async serviceChecks(
    serviceName: string,
    serviceId: string,
    scope: { namespace?: string; partition?: string } = {},
    opts: { retryDeadlineMs?: number } = {},
  ): Promise<HealthCheck[]> {
    const res = await this.http.call<unknown>({
      path: `/v1/health/checks/${encodeURIComponent(serviceName)}`,
      query: { filter: `ServiceID == \`${serviceId}\``, ns: scope.namespace, partition: scope.partition },
      token: this.token(),
      ...opts,
    });
    return objects<HealthCheck>(res ?? [], 'GET /v1/health/checks', 'an array of checks');
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An answer that must be an array of objects, else consul-bad-response saying what was expected. */
function objects<T>(value: unknown, call: string, expected: string): T[] {
  if (!Array.isArray(value) || !value.every(isObject)) {
    throw new ConsulEcsError('consul-bad-response', `Consul ${call} answered with something other than ${expected}`);
  }
  return value as T[];
}
