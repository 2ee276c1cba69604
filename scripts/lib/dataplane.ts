// HashiCorp's consul-dataplane, as a task's dataplane container runs it:
// `consul-dataplane -config-file <bootstrapDir>/consul-dataplane.json`, with the
// peers' Envoy first on its PATH; and consul-dataplane's own judgement of that
// file (consul-dataplane-config-check, built by scripts/peers.sh beside it).
import { execa, type ResultPromise } from 'execa';
import { freePort, peerBinary, peersPath } from './local-stack.ts';

/**
 * The releases scripts/peers.sh installs: the pinned one (`consul-dataplane`)
 * and the default of terraform-aws-consul-ecs v0.10, which the tests check too.
 */
export const DATAPLANE_RELEASES = ['1.9.9', '2.0.1'] as const;
export type DataplaneRelease = (typeof DATAPLANE_RELEASES)[number];

/** What consul-dataplane made of a config file (secrets left out), from its own types. */
export interface DataplaneRuntimeConfig {
  addresses: string;
  grpcPort: number;
  serverWatchDisabled: boolean;
  tlsDisabled: boolean;
  caCertsPath: string;
  serverName: string;
  credentialsType: string;
  staticTokenSet: boolean;
  loginAuthMethod: string;
  loginDatacenter: string;
  loginBearerTokenSet: boolean;
  loginMeta: Record<string, string> | null;
  nodeName: string;
  proxyID: string;
  namespace: string;
  partition: string;
  readyBindAddress: string;
  readyBindPort: number;
  xdsBindAddress: string;
  dnsBindAddress: string;
  dnsBindPort: number;
  logLevel: string;
}

/**
 * Decodes a consul-dataplane.json with the release's own config types, unknown
 * keys refused, and builds and validates its runtime config as `-config-file`
 * does. Throws with consul-dataplane's words when it refuses the file.
 */
export async function dataplaneAccepts(file: string, release: DataplaneRelease = DATAPLANE_RELEASES[0]): Promise<DataplaneRuntimeConfig> {
  const r = await execa(peerBinary(`consul-dataplane-config-check-${release}`), ['-test.run', '^TestConfigFiles$'], {
    env: { CONSUL_ECS_DATAPLANE_CONFIGS: file },
    reject: false,
    timeout: 30_000,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`consul-dataplane-config-check-${release} printed no result for ${file} (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  const res = JSON.parse(line) as { file: string; error?: string; config?: DataplaneRuntimeConfig };
  if (res.error || !res.config) throw new Error(`consul-dataplane ${release} refuses ${file}: ${res.error}`);
  return res.config;
}

export interface DataplaneCommandOptions {
  release?: DataplaneRelease;
  /** Envoy's admin port; default a free one (tasks sharing loopback would all take 19000). */
  adminPort?: number;
  logLevel?: string;
}

/** The dataplane container's command, with the flags that move it off ports other tasks on this loopback hold. */
export async function dataplaneCommand(configFile: string, opts: DataplaneCommandOptions = {}): Promise<{ command: string[]; adminPort: number }> {
  const adminPort = opts.adminPort ?? (await freePort());
  const binary = opts.release ? peerBinary(`consul-dataplane-${opts.release}`) : peerBinary('consul-dataplane');
  const command = [binary, '-config-file', configFile, '-envoy-admin-bind-port', String(adminPort)];
  if (opts.logLevel) command.push('-log-level', opts.logLevel);
  return { command, adminPort };
}

export interface RunningDataplane {
  proc: ResultPromise;
  adminPort: number;
  /** Everything it printed so far. */
  output(): string;
  /** SIGTERM, then its exit code (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | undefined>;
}

/**
 * Starts consul-dataplane from a config file, optionally under a wrapper (e.g.
 * `<bootstrapDir>/consul-ecs envoy-entrypoint`, or `ip netns exec <ns>`), with
 * the given environment added to PATH.
 */
export async function startDataplane(
  configFile: string,
  opts: DataplaneCommandOptions & { wrapper?: string[]; env?: Record<string, string> } = {},
): Promise<RunningDataplane> {
  const { command, adminPort } = await dataplaneCommand(configFile, opts);
  const [file, ...args] = [...(opts.wrapper ?? []), ...command];
  const proc = execa(file!, args, {
    env: { PATH: peersPath(), HOME: process.env.HOME ?? '', ...opts.env },
    extendEnv: false,
    reject: false,
    all: true,
    buffer: false,
    timeout: 600_000,
    cleanup: true,
  });
  let out = '';
  proc.all?.on('data', (d: Buffer) => (out += d.toString()));
  return {
    proc,
    adminPort,
    output: () => out,
    stop: async (timeoutMs = 15_000) => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const r = await proc;
      clearTimeout(timer);
      return r.exitCode;
    },
  };
}
