// consul-dataplane's configuration file (`<bootstrapDir>/consul-dataplane.json`),
// in the shape consul-dataplane's `-config-file` reads (its DataplaneConfigFlags;
// the tests decode every file this writes against those types, unknown keys refused).
// consul-ecs v0.10 writes the TLS server name as `tlsServerName`, a key
// consul-dataplane ignores (hashicorp/consul-ecs#328); this writes `serverName`.

export interface DataplaneLoginCredentials {
  authMethod: string;
  namespace?: string;
  partition?: string;
  datacenter: string;
  bearerToken: string;
  meta: Record<string, string>;
}

/**
 * How consul-dataplane gets its ACL token: it logs in with the bearer token of
 * the task's own login, or uses the token given (`CONSUL_HTTP_TOKEN`) as is.
 */
export type DataplaneCredentials = { type: 'login'; login: DataplaneLoginCredentials } | { type: 'static'; static: { token: string } };

export interface DataplaneConfig {
  consul: {
    addresses: string;
    grpcPort: number;
    serverWatchDisabled: boolean;
    tls: { disabled: boolean; caCertsPath?: string; serverName?: string };
    credentials?: DataplaneCredentials;
  };
  proxy: { nodeName: string; id: string; namespace: string; partition: string };
  xdsServer: { bindAddress: string };
  envoy: { readyBindAddress: string; readyBindPort: number };
  logging: { logLevel: string };
  dnsServer?: { bindAddress: string; bindPort: number };
}

/** consul-dataplane's DNS proxy address when Consul DNS is on (consul-ecs's defaults). */
export const DATAPLANE_DNS_BIND = { bindAddress: '127.0.0.1', bindPort: 8600 } as const;

export interface DataplaneConfigInput {
  /** `consulServers.hosts` as configured (a DNS name, IP or `exec=` command). */
  hosts: string;
  grpcPort: number;
  skipServerWatch: boolean;
  grpcTls: { enabled: boolean; caCertFile?: string; tlsServerName?: string };
  /** The catalog node and ID of the proxy or gateway. */
  node: string;
  proxyId: string;
  namespace?: string;
  partition?: string;
  readyPort: number;
  logLevel: string;
  credentials?: DataplaneCredentials;
  consulDns?: boolean;
}

export function dataplaneConfig(input: DataplaneConfigInput): DataplaneConfig {
  const cfg: DataplaneConfig = {
    consul: {
      addresses: input.hosts,
      grpcPort: input.grpcPort,
      serverWatchDisabled: input.skipServerWatch,
      tls: input.grpcTls.enabled
        ? {
            disabled: false,
            ...(input.grpcTls.caCertFile ? { caCertsPath: input.grpcTls.caCertFile } : {}),
            ...(input.grpcTls.tlsServerName ? { serverName: input.grpcTls.tlsServerName } : {}),
          }
        : { disabled: true },
    },
    proxy: { nodeName: input.node, id: input.proxyId, namespace: input.namespace ?? '', partition: input.partition ?? '' },
    xdsServer: { bindAddress: '127.0.0.1' },
    envoy: { readyBindAddress: '127.0.0.1', readyBindPort: input.readyPort },
    logging: { logLevel: input.logLevel },
  };
  if (input.credentials) cfg.consul.credentials = input.credentials;
  if (input.consulDns) cfg.dnsServer = { ...DATAPLANE_DNS_BIND };
  return cfg;
}
