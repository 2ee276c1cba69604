// consul-dataplane's configuration file (`<bootstrapDir>/consul-dataplane.json`),
// in the shape consul-dataplane's `-config-file` reads and consul-ecs writes.

export interface DataplaneLoginCredentials {
  authMethod: string;
  namespace?: string;
  partition?: string;
  datacenter: string;
  bearerToken: string;
  meta: Record<string, string>;
}

export interface DataplaneConfig {
  consul: {
    addresses: string;
    grpcPort: number;
    serverWatchDisabled: boolean;
    tls: { disabled: boolean; caCertsPath?: string; tlsServerName?: string };
    credentials?: { type: 'login'; login: DataplaneLoginCredentials } | { type: 'static'; static: { token: string } };
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
  login?: DataplaneLoginCredentials;
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
            ...(input.grpcTls.tlsServerName ? { tlsServerName: input.grpcTls.tlsServerName } : {}),
          }
        : { disabled: true },
    },
    proxy: { nodeName: input.node, id: input.proxyId, namespace: input.namespace ?? '', partition: input.partition ?? '' },
    xdsServer: { bindAddress: '127.0.0.1' },
    envoy: { readyBindAddress: '127.0.0.1', readyBindPort: input.readyPort },
    logging: { logLevel: input.logLevel },
  };
  if (input.login) cfg.consul.credentials = { type: 'login', login: input.login };
  if (input.consulDns) cfg.dnsServer = { ...DATAPLANE_DNS_BIND };
  return cfg;
}
