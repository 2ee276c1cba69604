// A real Consul server cluster on loopback, for tests and benchmarks that need
// Raft: N servers (3 by default, bootstrap_expect=N, not -dev), each with its own
// data dir and its own loopback address, ACLs on with default deny and a known
// management token. Servers can be stopped and started again, paused (SIGSTOP)
// to make a follower lag, removed, and replaced by new ones at other addresses.
//
// Every server listens for HTTP and gRPC on the same two ports, each on its own
// loopback address (127.a.b.N): consul-ecs's `consulServers.hosts` resolves to
// IP addresses and takes one port from `consulServers.http.port`, so a task
// reaches any server of the cluster as it would in a VPC. Serf and server RPC
// ports are each server's own.
import { randomInt, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { ConsulHttpClient, DEFAULT_AUTH_METHOD, type AclTokenListEntry, type AgentService } from '@consul-ecs-ts/core';
import { configureIamAuthMethod, freePorts, peerBinary, stopProcess, waitFor, type AuthMethodOptions, type MotoServer } from './local-stack.ts';

/** Consul agent configuration, merged into every server's (objects merged key by key, anything else replaced). */
export type ConsulConfig = Record<string, unknown>;

export interface ConsulClusterOptions {
  /** How many servers, all voters; default 3. */
  servers?: number;
  /** Added to every server's configuration, e.g. `{ limits: { request_limits: { mode: 'enforcing', write_rate: 50 } } }`. */
  serverConfig?: ConsulConfig;
  /** The agents' log level; default `CONSUL_PEER_LOG_LEVEL` or info. */
  logLevel?: string;
}

/** What a Raft configuration lists for one server. */
export interface RaftServer {
  ID: string;
  Node: string;
  Address: string;
  Leader: boolean;
  Voter: boolean;
}

/** One server of a {@link ConsulCluster}. */
export class ClusterServer {
  /** Serf LAN, Serf WAN and server RPC ports, on {@link address}. */
  readonly ports: { serfLan: number; serfWan: number; server: number };
  #proc: ResultPromise | undefined;
  #paused = false;

  constructor(
    readonly cluster: ConsulCluster,
    /** Its node name, `server-<n>`. */
    readonly name: string,
    /** Its own loopback address: bind, advertise and client address. */
    readonly address: string,
    ports: number[],
    /** Its work directory: data dir, config, log. */
    readonly dir: string,
  ) {
    this.ports = { serfLan: ports[0]!, serfWan: ports[1]!, server: ports[2]! };
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  get logFile(): string {
    return join(this.dir, 'consul.log');
  }

  /** Its HTTP API address. */
  get httpAddr(): string {
    return `http://${this.address}:${this.cluster.ports.http}`;
  }

  /** Its address in the Raft configuration and in `/v1/status/leader`. */
  get raftAddress(): string {
    return `${this.address}:${this.ports.server}`;
  }

  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null;
  }

  /** Stopped with SIGSTOP and not yet resumed. */
  get paused(): boolean {
    return this.#paused;
  }

  /** The process id while it runs. */
  get pid(): number | undefined {
    return this.running ? this.#proc?.pid : undefined;
  }

  /** A client of this server alone (pass the token per call). */
  client(opts: { retryDeadlineMs?: number; timeoutMs?: number } = {}): ConsulHttpClient {
    return new ConsulHttpClient({ address: this.httpAddr, retryDeadlineMs: opts.retryDeadlineMs ?? 0, timeoutMs: opts.timeoutMs ?? 2000 });
  }

  /** Calls this server's API as the management token, once (no retries). */
  async api<T = unknown>(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
    query?: Record<string, string | boolean>,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    const client = this.client(opts);
    try {
      return await client.call<T>({ method, path, body, query, token: this.cluster.managementToken });
    } finally {
      await client.close();
    }
  }

  /** The last lines of its log, for errors. */
  async logTail(lines = 15): Promise<string> {
    const log = await readFile(this.logFile, 'utf8').catch(() => '');
    return log.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Writes its configuration and starts the agent (does not wait for it). */
  async spawn(config: ConsulConfig): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    const configFile = join(this.dir, 'config.json');
    await writeFile(configFile, JSON.stringify(config, null, 2));
    const log = { file: this.logFile, append: true };
    this.#paused = false;
    this.#proc = execa(peerBinary('consul'), ['agent', `-config-file=${configFile}`], {
      stdin: 'ignore',
      stdout: log,
      stderr: log,
      reject: false,
      cleanup: true,
    });
  }

  /** The agent process, for waits that stop when it exits. */
  get process(): ResultPromise | undefined {
    return this.#proc;
  }

  /** Stops the agent (SIGTERM: a server does not leave the cluster, its data stays). */
  async stop(): Promise<void> {
    if (this.#paused) this.resume();
    await stopProcess(this.#proc);
    this.#proc = undefined;
  }

  /** Freezes the process (SIGSTOP): it holds its connections but answers nothing, and falls behind. */
  pause(): void {
    if (!this.running) throw new Error(`cannot pause ${this.name}: it is not running`);
    this.#proc!.kill('SIGSTOP');
    this.#paused = true;
  }

  /** Lets a paused process go on (SIGCONT). */
  resume(): void {
    if (!this.#paused) return;
    this.#proc?.kill('SIGCONT');
    this.#paused = false;
  }
}

/**
 * A Consul cluster of real servers on loopback (see the file's header). Start it
 * with {@link ConsulCluster.start}; {@link dispose} stops every server and
 * removes every data dir.
 */
export class ConsulCluster {
  readonly managementToken = randomUUID();
  /** The HTTP and gRPC ports every server listens on, each on its own address. */
  readonly ports = { http: 0, grpc: 0 };
  /** The servers, in the order they were added; removed ones are gone from it. */
  readonly servers: ClusterServer[] = [];
  /** 127.a.b. — this cluster's own range of loopback addresses. */
  readonly #prefix: string;
  #next = 1;
  #workDir = '';

  private constructor(readonly opts: ConsulClusterOptions) {
    this.#prefix = `127.${randomInt(100, 200)}.${randomInt(1, 255)}.`;
  }

  /** Starts `servers` servers (default 3), and waits until they have elected a leader and ACLs work on each. */
  static async start(opts: ConsulClusterOptions = {}): Promise<ConsulCluster> {
    const count = opts.servers ?? 3;
    // Ports are free when chosen and released for Consul to bind: another process
    // can take one in between, and an agent then exits at once. Start again elsewhere.
    for (let attempt = 1; ; attempt++) {
      const cluster = new ConsulCluster(opts);
      cluster.#workDir = await mkdtemp(join(tmpdir(), 'consul-cluster-'));
      try {
        const [http, grpc] = await freePorts(2);
        Object.assign(cluster.ports, { http, grpc });
        for (let i = 0; i < count; i++) await cluster.#newServer();
        const joinAddrs = cluster.servers.map((s) => `${s.address}:${s.ports.serfLan}`);
        await Promise.all(cluster.servers.map((s) => s.spawn(cluster.#config(s, { bootstrap_expect: count, retry_join: joinAddrs }))));
        await Promise.all(cluster.servers.map((s) => cluster.#waitReady(s)));
        return cluster;
      } catch (err) {
        const logs = await Promise.all(cluster.servers.map(async (s) => [s, await readFile(s.logFile, 'utf8').catch(() => '')] as const));
        const tails = await Promise.all(cluster.servers.map(async (s) => `--- the end of ${s.name}'s log:\n${await s.logTail()}`));
        await cluster.dispose();
        if (attempt < 3 && logs.some(([, log]) => /address already in use/i.test(log))) continue;
        throw new Error(`a ${count}-server Consul cluster did not start: ${(err as Error).message}\n${tails.join('\n')}`, { cause: err });
      }
    }
  }

  /** The servers running now (paused ones included). */
  running(): ClusterServer[] {
    return this.servers.filter((s) => s.running);
  }

  /** The loopback addresses of the running servers: what `consulServers.hosts` resolves to. */
  addresses(): string[] {
    return this.running().map((s) => s.address);
  }

  /**
   * Writes the running servers' addresses to `file`, one a line, and returns
   * `exec=/bin/cat <file>` for `consulServers.hosts`: a cloud's auto-join that
   * the test can change. Call it again after servers change.
   */
  async writeHostsFile(file: string, servers: ClusterServer[] = this.running()): Promise<string> {
    await writeFile(file, servers.map((s) => `${s.address}\n`).join(''));
    return `exec=/bin/cat ${file}`;
  }

  /** The leader, once every running server that is not paused agrees on one that runs. */
  async leader(timeoutMs = 30_000): Promise<ClusterServer> {
    return waitFor(`a leader of the Consul cluster (${this.#describe()})`, timeoutMs, async () => {
      const answering = this.running().filter((s) => !s.paused);
      const seen = await Promise.all(answering.map((s) => s.api<string>('GET', '/v1/status/leader')));
      const leader = this.running().find((s) => s.raftAddress === seen[0]);
      return leader && seen.every((a) => a === seen[0]) ? leader : undefined;
    });
  }

  /** The running servers other than the leader. */
  async followers(): Promise<ClusterServer[]> {
    const leader = await this.leader();
    return this.running().filter((s) => s !== leader);
  }

  /** The Raft configuration, as the leader has it. */
  async raftServers(): Promise<RaftServer[]> {
    const leader = await this.leader();
    return (await leader.api<{ Servers: RaftServer[] }>('GET', '/v1/operator/raft/configuration')).Servers;
  }

  /** Stops a server; it stays a voter (the others keep a quorum while a majority runs). */
  async stop(server: ClusterServer): Promise<void> {
    await server.stop();
  }

  /** Starts a stopped server again, on its address, ports and data; waits until it follows a leader with ACLs working. */
  async start(server: ClusterServer): Promise<void> {
    if (server.running) return;
    const others = this.servers.filter((s) => s !== server).map((s) => `${s.address}:${s.ports.serfLan}`);
    await server.spawn(this.#config(server, { retry_join: others }));
    await this.#waitReady(server);
  }

  /**
   * Removes a server for good and deletes its data. By default as when its
   * machine is gone: stopped, then taken out of the Raft configuration by the
   * leader; Serf lists it as failed until it is reaped (a force-leave would
   * hold the leader's Serf for over 15 s). With `leave`, a running one leaves
   * gracefully first (`/v1/agent/leave`: out of Serf and Raft, leadership
   * handed over if it leads), which takes over 10 s. Either way a majority of
   * the voters must be running.
   */
  async remove(server: ClusterServer, opts: { leave?: boolean } = {}): Promise<void> {
    if (opts.leave && server.running && !server.paused) {
      await server.api('PUT', '/v1/agent/leave', undefined, undefined, { timeoutMs: 30_000 });
      await waitFor(`${server.name} to exit after leaving`, 15_000, async () => (server.running ? undefined : true)).catch(() => {});
    }
    await server.stop();
    this.servers.splice(this.servers.indexOf(server), 1);
    const inRaft = async () => (await this.raftServers()).find((p) => p.Node === server.name || p.Address === server.raftAddress);
    const left = await inRaft();
    if (left) await (await this.leader()).api('DELETE', '/v1/operator/raft/peer', undefined, { id: left.ID });
    await waitFor(`${server.name} out of the Raft configuration`, 30_000, async () => ((await inRaft()) ? undefined : true));
    await rm(server.dir, { recursive: true, force: true });
  }

  /**
   * Adds a new server at a loopback address no server had before, with ports
   * of its own (HTTP and gRPC: the cluster's), joined to the running ones;
   * waits until it follows the leader with ACLs working, in the Raft
   * configuration. With `voter`, until autopilot has made it a voter too (after
   * Consul's autopilot round, up to 10 s): before that it does not count for
   * the quorum. `config` is added to its configuration.
   */
  async add(config: ConsulConfig = {}, opts: { voter?: boolean } = {}): Promise<ClusterServer> {
    const server = await this.#newServer();
    const others = this.running().filter((s) => s !== server);
    await server.spawn(mergeConfig(this.#config(server, { retry_join: others.map((s) => `${s.address}:${s.ports.serfLan}`) }), config));
    try {
      await this.#waitReady(server);
      await waitFor(`${server.name} ${opts.voter ? 'a voter' : 'in the Raft configuration'}`, 30_000, async () =>
        (await this.raftServers()).some((p) => p.Node === server.name && (p.Voter || !opts.voter)) ? true : undefined,
      );
    } catch (err) {
      const tail = await server.logTail();
      await server.stop();
      this.servers.splice(this.servers.indexOf(server), 1);
      await rm(server.dir, { recursive: true, force: true });
      throw new Error(`${(err as Error).message}\n--- the end of ${server.name}'s log:\n${tail}`, { cause: err });
    }
    return server;
  }

  /**
   * The `iam-ecs-service-token` auth method and its binding rule pointed at moto,
   * made by local-stack's {@link configureIamAuthMethod} exactly as for a single server.
   */
  async configureIamAuthMethod(moto: MotoServer, opts: AuthMethodOptions = {}): Promise<void> {
    await configureIamAuthMethod(this, moto, { name: DEFAULT_AUTH_METHOD, ...opts });
  }

  /** Calls the API as the management token through a running server (the leader if it can), retrying while the cluster elects. */
  async api<T = unknown>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const server = await this.leader().catch(() => this.running().find((s) => !s.paused));
    if (!server) throw new Error(`no Consul server of the cluster is running (${this.#describe()})`);
    const client = server.client({ retryDeadlineMs: 5000 });
    try {
      return await client.call<T>({ method, path, body, token: this.managementToken });
    } finally {
      await client.close();
    }
  }

  /** The tokens made by a login to an auth method, as Consul lists them. */
  async loginTokens(): Promise<AclTokenListEntry[]> {
    return (await this.api<AclTokenListEntry[]>('GET', '/v1/acl/tokens')).filter((t) => t.AuthMethod);
  }

  /** The service instances registered on a node (a cluster's synthetic node). */
  async nodeServices(node: string): Promise<AgentService[]> {
    return (await this.api<{ Services: AgentService[] | null }>('GET', `/v1/catalog/node-services/${encodeURIComponent(node)}`)).Services ?? [];
  }

  /** Stops every server and removes every data dir. */
  async dispose(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
    if (this.#workDir) await rm(this.#workDir, { recursive: true, force: true });
  }

  async #newServer(): Promise<ClusterServer> {
    const n = this.#next++;
    if (n > 254) throw new Error('a ConsulCluster has room for 254 servers over its life');
    const dir = join(this.#workDir, `server-${n}`);
    await mkdir(dir, { recursive: true });
    const server = new ClusterServer(this, `server-${n}`, `${this.#prefix}${n}`, await freePorts(3), dir);
    this.servers.push(server);
    return server;
  }

  #config(server: ClusterServer, joining: ConsulConfig): ConsulConfig {
    const base = {
      server: true,
      node_name: server.name,
      datacenter: 'dc1',
      data_dir: server.dataDir,
      bind_addr: server.address,
      advertise_addr: server.address,
      client_addr: server.address,
      log_level: this.opts.logLevel ?? process.env.CONSUL_PEER_LOG_LEVEL ?? 'info',
      // No calls home: this machine talks to nothing but loopback.
      disable_update_check: true,
      ports: {
        http: this.ports.http,
        https: -1,
        grpc: this.ports.grpc,
        grpc_tls: -1,
        dns: -1,
        serf_lan: server.ports.serfLan,
        serf_wan: server.ports.serfWan,
        server: server.ports.server,
      },
      retry_interval: '1s',
      connect: { enabled: true },
      // Elections at full speed (servers default to 5x slower timeouts); a new
      // server becomes a voter after 1 s of health instead of 10.
      performance: { raft_multiplier: 1 },
      autopilot: { server_stabilization_time: '1s' },
      acl: {
        enabled: true,
        default_policy: 'deny',
        enable_token_persistence: false,
        tokens: { initial_management: this.managementToken, agent: this.managementToken },
      },
      ...joining,
    };
    return mergeConfig(base, this.opts.serverConfig ?? {});
  }

  /** Waits until the server knows a leader and answers an ACL-checked call; stops it if it never does. */
  async #waitReady(server: ClusterServer): Promise<void> {
    await waitFor(
      `Consul server ${server.name} on ${server.httpAddr} (log ${server.logFile})`,
      60_000,
      async () => {
        const leader = await server.api<string>('GET', '/v1/status/leader');
        if (!leader) return undefined;
        await server.api('GET', '/v1/acl/token/self');
        return true;
      },
      server.process,
    ).catch(async (err: unknown) => {
      await server.stop();
      throw err;
    });
  }

  #describe(): string {
    return this.servers.map((s) => `${s.name} ${s.address} ${s.running ? (s.paused ? 'paused' : 'running') : 'stopped'}`).join(', ');
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `extra` over `base`: objects merged key by key, anything else replaced. */
export function mergeConfig(base: ConsulConfig, extra: ConsulConfig): ConsulConfig {
  const out: ConsulConfig = { ...base };
  for (const [k, v] of Object.entries(extra)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeConfig(out[k], v) : v;
  return out;
}
