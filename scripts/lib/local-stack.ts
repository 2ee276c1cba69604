// The real peers on loopback, for tests, the demo and the benchmarks: a Consul
// server (ACLs on, default deny, the aws-iam auth method pointed at moto), moto
// as the STS/IAM emulator with SigV4 checking on, and Envoy. Binaries come from
// `scripts/peers.sh install`.
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { ConsulHttpClient, DEFAULT_AUTH_METHOD, type AclTokenListEntry, type AgentService } from '@consul-ecs-ts/core';
import { AwsAdmin, SERVICE_NAME_TAG } from './aws-admin.ts';

export const PEERS_DIR = process.env.CONSUL_ECS_PEERS_DIR || join(homedir(), '.cache/consul-ecs-ts/peers');

export type PeerName =
  'consul' | 'envoy' | 'moto_server' | 'consul-dataplane' | 'consul-dataplane-config-check' | `consul-dataplane${'' | '-config-check'}-${string}`;

export function peerBinary(name: PeerName): string {
  return join(PEERS_DIR, 'bin', name);
}

/** The peers' bin directory first on PATH: consul-dataplane runs the `envoy` it finds there. */
export function peersPath(): string {
  return [join(PEERS_DIR, 'bin'), process.env.PATH ?? ''].filter(Boolean).join(':');
}

/**
 * Ports free on 127.0.0.1 right now for TCP and UDP (Consul's Serf ports use
 * both), all different: each is held open until all are chosen.
 */
export async function freePorts(count: number): Promise<number[]> {
  const held: Array<{ close: () => Promise<void> }> = [];
  const ports: number[] = [];
  // Never hand out a port twice in this process: peers started side by side
  // could otherwise get the same one before either binds it.
  try {
    while (ports.length < count) {
      const srv = createServer();
      const port = await new Promise<number>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve((srv.address() as { port: number }).port));
      });
      held.push({ close: () => new Promise((r) => srv.close(() => r())) });
      const sock = createSocket('udp4');
      const udpFree = await new Promise<boolean>((resolve) => {
        sock.once('error', () => resolve(false));
        sock.bind(port, '127.0.0.1', () => resolve(true));
      });
      if (udpFree) held.push({ close: () => new Promise((r) => sock.close(() => r())) });
      if (udpFree && !handedOut.has(port)) {
        handedOut.add(port);
        ports.push(port);
      }
    }
    return ports;
  } finally {
    await Promise.all(held.map((h) => h.close()));
  }
}

const handedOut = new Set<number>();

/** One free port (see {@link freePorts}). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** Polls `probe` until it returns a value, failing after `timeoutMs` or when `proc` exits first. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, proc?: ResultPromise): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let exited: string | undefined;
  void proc?.then((r) => {
    exited = r.message ?? `exit code ${r.exitCode}`;
  });
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${what}: the process exited before it was ready: ${exited}`);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
}

/** SIGTERM, then SIGKILL after `timeoutMs`; waits for the exit. */
export async function stopProcess(proc: ResultPromise | undefined, timeoutMs = 10_000): Promise<void> {
  if (!proc || proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  await proc.catch(() => {});
  clearTimeout(timer);
}

export interface ConsulServerOptions {
  /** Keep state in this directory (a real server, not -dev), so it survives a restart. */
  dataDir?: string;
  /**
   * Also serve HTTPS and gRPC over TLS, with a CA and server certificate made by
   * `consul tls` (names server.dc1.consul, localhost, 127.0.0.1). Plain HTTP
   * and gRPC stay on for the tests' own calls.
   */
  tls?: boolean;
  /** Where the agent's output goes; default a file in its work directory. */
  logFile?: string;
  nodeName?: string;
  /**
   * More loopback addresses its HTTP(S) and gRPC ports listen on (beside
   * 127.0.0.1), e.g. one its TLS certificate does not name.
   */
  alsoListenOn?: string[];
  /**
   * More agent configuration, merged over the defaults at the top level, e.g.
   * `{ limits: { request_limits: { mode: 'enforcing', read_rate: 50, write_rate: 20 } } }`.
   */
  extraConfig?: Record<string, unknown>;
}

/** A Consul server on loopback with ACLs on (`default_policy = "deny"`) and a known management token. */
export class ConsulServer {
  readonly managementToken = randomUUID();
  readonly ports = { http: 0, grpc: 0, serfLan: 0, serfWan: 0, server: 0, https: 0, grpcTls: 0 };
  /** With `tls`: the CA certificate file and its PEM. */
  caFile = '';
  caPem = '';
  #proc: ResultPromise | undefined;
  #workDir = '';
  /** The loopback address its HTTP(S) and gRPC ports listen on. */
  #clientAddr = '127.0.0.1';

  private constructor(readonly opts: ConsulServerOptions) {}

  static async start(opts: ConsulServerOptions = {}): Promise<ConsulServer> {
    // The ports are free when chosen and released for Consul to bind: a process
    // starting peers beside this one (another test file) can take one in between,
    // and Consul then exits at once. It starts again on other ports.
    for (let attempt = 1; ; attempt++) {
      const s = new ConsulServer(opts);
      s.#workDir = await mkdtemp(join(tmpdir(), 'consul-peer-'));
      const keys = Object.keys(s.ports) as Array<keyof ConsulServer['ports']>;
      const ports = await freePorts(keys.length);
      keys.forEach((k, i) => (s.ports[k] = ports[i]!));
      try {
        if (opts.tls) await s.#makeCertificates();
        await s.#spawn();
        return s;
      } catch (err) {
        const log = await readFile(s.logFile, 'utf8').catch(() => '');
        await s.dispose();
        if (attempt < 3 && /address already in use/i.test(log)) continue;
        // The log goes with the work dir: keep its end in the error.
        const tail = log.trimEnd().split('\n').slice(-15).join('\n');
        throw new Error(`${(err as Error).message}${tail ? `\n--- the end of Consul's log:\n${tail}` : ''}`, { cause: err });
      }
    }
  }

  get httpAddr(): string {
    return `http://${this.#clientAddr}:${this.ports.http}`;
  }

  /** With `tls`: the HTTPS address. */
  get httpsAddr(): string {
    return `https://${this.#clientAddr}:${this.ports.https}`;
  }

  async #makeCertificates(): Promise<void> {
    const dir = join(this.#workDir, 'tls');
    await mkdir(dir);
    await execa(peerBinary('consul'), ['tls', 'ca', 'create', '-domain', 'consul'], { cwd: dir });
    await execa(peerBinary('consul'), ['tls', 'cert', 'create', '-server', '-dc', 'dc1', '-domain', 'consul'], { cwd: dir });
    this.caFile = join(dir, 'consul-agent-ca.pem');
    this.caPem = await readFile(this.caFile, 'utf8');
  }

  get logFile(): string {
    return this.opts.logFile ?? join(this.#workDir, 'consul.log');
  }

  /** A client with the management token's rights (pass it per call). */
  client(): ConsulHttpClient {
    return new ConsulHttpClient({ address: this.httpAddr, retryDeadlineMs: 5000 });
  }

  /** Calls the API as the management token. */
  api<T = unknown>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    return this.client().call<T>({ method, path, body, token: this.managementToken });
  }

  /** The tokens made by a login to an auth method, as Consul lists them. */
  async loginTokens(): Promise<AclTokenListEntry[]> {
    return (await this.api<AclTokenListEntry[]>('GET', '/v1/acl/tokens')).filter((t) => t.AuthMethod);
  }

  /** The service instances registered on a node (a cluster's synthetic node). */
  async nodeServices(node: string): Promise<AgentService[]> {
    return (await this.api<{ Services: AgentService[] | null }>('GET', `/v1/catalog/node-services/${encodeURIComponent(node)}`)).Services ?? [];
  }

  async #spawn(): Promise<void> {
    const config = {
      node_name: this.opts.nodeName ?? 'consul-peer',
      datacenter: 'dc1',
      bind_addr: '127.0.0.1',
      client_addr: [this.#clientAddr, ...(this.opts.alsoListenOn ?? [])].join(' '),
      advertise_addr: '127.0.0.1',
      log_level: process.env.CONSUL_PEER_LOG_LEVEL ?? 'info',
      // No calls home: this machine talks to nothing but loopback.
      disable_update_check: true,
      ports: {
        http: this.ports.http,
        https: this.opts.tls ? this.ports.https : -1,
        grpc: this.ports.grpc,
        grpc_tls: this.opts.tls ? this.ports.grpcTls : -1,
        dns: -1,
        serf_lan: this.ports.serfLan,
        serf_wan: this.ports.serfWan,
        server: this.ports.server,
      },
      ...(this.opts.tls
        ? {
            tls: {
              defaults: {
                ca_file: this.caFile,
                cert_file: join(this.#workDir, 'tls', 'dc1-server-consul-0.pem'),
                key_file: join(this.#workDir, 'tls', 'dc1-server-consul-0-key.pem'),
                verify_incoming: false,
              },
            },
          }
        : {}),
      connect: { enabled: true },
      // Leader election at full speed (servers default to 5x slower timeouts).
      performance: { raft_multiplier: 1 },
      acl: {
        enabled: true,
        default_policy: 'deny',
        enable_token_persistence: false,
        tokens: { initial_management: this.managementToken, agent: this.managementToken },
      },
      ...this.opts.extraConfig,
    };
    const configFile = join(this.#workDir, 'config.json');
    await writeFile(configFile, JSON.stringify(config));
    const args = this.opts.dataDir
      ? ['agent', '-server', '-bootstrap-expect=1', `-data-dir=${this.opts.dataDir}`, `-config-file=${configFile}`]
      : ['agent', '-dev', `-config-file=${configFile}`];
    const log = { file: this.logFile, append: true };
    this.#proc = execa(peerBinary('consul'), args, { stdin: 'ignore', stdout: log, stderr: log, reject: false, cleanup: true });
    const client = new ConsulHttpClient({ address: this.httpAddr, retryDeadlineMs: 0, timeoutMs: 2000 });
    await this.#waitReady(client);
  }

  /** Waits until the agent answers with a leader and its ACLs; stops it if it never does. */
  async #waitReady(client: ConsulHttpClient): Promise<void> {
    await waitFor(
      `Consul on ${this.httpAddr} (log ${this.logFile})`,
      60_000,
      async () => {
        const leader = await client.call<string>({ path: '/v1/status/leader' });
        if (!leader) return undefined;
        await client.call({ path: '/v1/acl/token/self', token: this.managementToken });
        return true;
      },
      this.#proc,
    ).catch(async (err: unknown) => {
      await this.stop();
      throw err;
    });
  }

  /** Stops the agent; with a data dir its state survives for {@link start}. */
  async stop(): Promise<void> {
    await stopProcess(this.#proc);
    this.#proc = undefined;
  }

  /** Starts it again on the same ports (after {@link stop}). */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn();
  }

  /**
   * Starts it again with its client ports on another loopback address (after
   * {@link stop}): a server replaced by one at a new IP. Its state survives with
   * a data dir.
   */
  async moveTo(clientAddr: string): Promise<void> {
    await this.stop();
    this.#clientAddr = clientAddr;
    await this.#spawn();
  }

  /** Stops the agent and removes its work directory. */
  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.#workDir, { recursive: true, force: true });
  }
}

/** Moto's default account. */
export const MOTO_ACCOUNT = '123456789012';

/** How many requests moto lets through unauthenticated: enough to create the admin user and its key. */
const BOOTSTRAP_ACTIONS = 3;

export interface MotoServerOptions {
  /**
   * The address it listens on (its URL's host); default 127.0.0.1. A bridge's
   * address makes it reachable from network namespaces on that bridge.
   */
  host?: string;
}

/** moto in server mode on loopback (or the address given), refusing requests whose SigV4 signature does not check out. */
export class MotoServer {
  #proc: ResultPromise | undefined;
  #workDir = '';
  #host = '127.0.0.1';
  port = 0;
  admin!: AwsAdmin;

  static async start(opts: MotoServerOptions = {}): Promise<MotoServer> {
    const m = new MotoServer();
    if (opts.host) m.#host = opts.host;
    try {
      await m.#start();
    } catch (err) {
      await m.dispose();
      throw err;
    }
    return m;
  }

  async #start(): Promise<void> {
    this.#workDir = await mkdtemp(join(tmpdir(), 'moto-peer-'));
    this.port = await freePort();
    const log = { file: this.logFile, append: true };
    this.#proc = execa(peerBinary('moto_server'), ['-H', this.#host, '-p', String(this.port)], {
      stdin: 'ignore',
      stdout: log,
      stderr: log,
      reject: false,
      cleanup: true,
      env: { INITIAL_NO_AUTH_ACTION_COUNT: String(BOOTSTRAP_ACTIONS), AWS_DEFAULT_REGION: 'us-east-1' },
    });
    await waitFor(
      `moto on ${this.url}`,
      30_000,
      async () => {
        const res = await fetch(`${this.url}/moto-api/`);
        await res.arrayBuffer();
        return res.status < 500 ? true : undefined;
      },
      this.#proc,
    );
    // The first BOOTSTRAP_ACTIONS requests need no valid signature: make the admin.
    const anonymous = new AwsAdmin(this.url, { accessKeyId: 'AKIABOOTSTRAPEXAMPLE', secretAccessKey: 'bootstrap' }, MOTO_ACCOUNT);
    await anonymous.call('iam', 'CreateUser', { UserName: 'admin' });
    await anonymous.call('iam', 'PutUserPolicy', {
      UserName: 'admin',
      PolicyName: 'admin',
      PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }),
    });
    const key = (await anonymous.call('iam', 'CreateAccessKey', { UserName: 'admin' })).AccessKey as Record<string, string>;
    this.admin = new AwsAdmin(this.url, { accessKeyId: key.AccessKeyId!, secretAccessKey: key.SecretAccessKey! }, MOTO_ACCOUNT);
  }

  get url(): string {
    return `http://${this.#host}:${this.port}`;
  }

  get logFile(): string {
    return join(this.#workDir, 'moto.log');
  }

  async dispose(): Promise<void> {
    await stopProcess(this.#proc);
    await rm(this.#workDir, { recursive: true, force: true });
  }
}

/** Starts Consul and moto side by side; if either fails, the other is stopped too. */
export async function startConsulAndMoto(opts: ConsulServerOptions = {}, motoOpts: MotoServerOptions = {}): Promise<[ConsulServer, MotoServer]> {
  const [consul, moto] = await Promise.allSettled([ConsulServer.start(opts), MotoServer.start(motoOpts)]);
  if (consul.status === 'fulfilled' && moto.status === 'fulfilled') return [consul.value, moto.value];
  if (consul.status === 'fulfilled') await consul.value.dispose();
  if (moto.status === 'fulfilled') await moto.value.dispose();
  throw consul.status === 'rejected' ? consul.reason : (moto as PromiseRejectedResult).reason;
}

export interface AuthMethodOptions {
  name?: string;
  iamRolePath?: string;
  serverIdHeaderValue?: string;
}

/**
 * Creates the `iam-ecs-service-token` auth method and its binding rule exactly as
 * seed 001 configures them, with STS and IAM pointed at moto.
 */
export async function configureIamAuthMethod(consul: Pick<ConsulServer, 'api'>, moto: MotoServer, opts: AuthMethodOptions = {}): Promise<void> {
  await createIamAuthMethod(consul, moto, opts);
  await createServiceBindingRule(consul, opts.name);
}

/** The auth method of {@link configureIamAuthMethod}, without its binding rule. */
export async function createIamAuthMethod(consul: Pick<ConsulServer, 'api'>, moto: MotoServer, opts: AuthMethodOptions = {}): Promise<void> {
  await consul.api('PUT', '/v1/acl/auth-method', {
    Name: opts.name ?? DEFAULT_AUTH_METHOD,
    Type: 'aws-iam',
    Description: 'AWS IAM auth method for ECS service tokens',
    Config: {
      BoundIAMPrincipalARNs: [`arn:aws:iam::${moto.admin.account}:role${opts.iamRolePath ?? '/consul-ecs/'}*`],
      EnableIAMEntityDetails: true,
      IAMEntityTags: [SERVICE_NAME_TAG],
      ...(opts.serverIdHeaderValue ? { ServerIDHeaderValue: opts.serverIdHeaderValue } : {}),
      STSEndpoint: moto.url,
      IAMEndpoint: moto.url,
      MaxRetries: 0,
    },
  });
}

/** The binding rule of {@link configureIamAuthMethod}: a service identity named by the role's service-name tag. */
export async function createServiceBindingRule(consul: Pick<ConsulServer, 'api'>, authMethod = DEFAULT_AUTH_METHOD): Promise<void> {
  await consul.api('PUT', '/v1/acl/binding-rule', {
    AuthMethod: authMethod,
    Description: 'Bind a service identity from IAM role tags for ECS service tokens',
    BindType: 'service',
    BindName: `\${entity_tags.${SERVICE_NAME_TAG}}`,
  });
}
