import { ConsulHttpClient, type Clock } from '@consul-ecs-ts/core';
import type { Dispatcher } from 'undici';

/** Connection flags shared with the consul CLI, with its environment variables. */
export const consulConnectionFlags = {
  'http-addr': {
    type: 'string',
    usage: 'The address and port of the Consul HTTP agent or server; https:// for TLS.',
    default: '127.0.0.1:8500',
    env: 'CONSUL_HTTP_ADDR',
  },
  'ca-file': {
    type: 'string',
    usage: 'Path to a CA file to verify the Consul server certificate. CONSUL_HTTPS_CACERT_PEM is used when unset.',
    env: 'CONSUL_CACERT',
  },
  'tls-server-name': {
    type: 'string',
    usage: 'The server name to verify the Consul server certificate against (SNI).',
    env: 'CONSUL_TLS_SERVER_NAME',
  },
} as const;

export function consulClientFromFlags(
  flags: { 'http-addr'?: string; 'ca-file'?: string; 'tls-server-name'?: string },
  env: Record<string, string | undefined>,
  extra: { dispatcher?: Dispatcher; clock?: Clock; partition?: string; namespace?: string; datacenter?: string } = {},
): ConsulHttpClient {
  const caPem = flags['ca-file'] ? undefined : env.CONSUL_HTTPS_CACERT_PEM || undefined;
  return new ConsulHttpClient({
    address: flags['http-addr'] ?? '127.0.0.1:8500',
    tls: { caFile: flags['ca-file'], caPem, serverName: flags['tls-server-name'] },
    dispatcher: extra.dispatcher,
    clock: extra.clock,
    partition: extra.partition,
    namespace: extra.namespace,
    datacenter: extra.datacenter,
  });
}
