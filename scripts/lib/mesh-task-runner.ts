// Simulated awsvpc mesh tasks, each in a network namespace of its own (see
// task-network.ts), running what a terraform-aws-consul-ecs mesh task runs:
//   consul-ecs-control-plane  the self-contained executable, `control-plane` (mesh-init + health-sync), as root
//   consul-dataplane          `<bootstrapDir>/consul-ecs envoy-entrypoint` around Envoy (from envoy-bootstrap.json)
//                             or consul-dataplane (from consul-dataplane.json), as user 5995
//   app                       `<bootstrapDir>/consul-ecs app-entrypoint -shutdown-delay <d>` around mesh-app.mjs
// and the ECS agent's part: the task metadata and credentials endpoints (the ECS
// agent simulator, on the bridge address), the containers' order (the dataplane
// once the control plane has initialised the task, the app once the dataplane is
// healthy), their health checks (`consul-ecs net-dial 127.0.0.1:<readyPort>` for
// the dataplane), marking a container STOPPED when its process exits, and the
// task's stop: SIGTERM to every container at once, SIGKILL at the stop timeout.
// MeshStack is the shared part: Consul and moto listening on the bridge address
// for the namespaces, the aws-iam auth method, intentions.
// On a loopback network (TaskNetwork.loopback(), no root) the tasks share the
// host's loopback instead: each gets free ports of its own (app, public listener,
// Envoy's ready and admin ports), the containers run as the current user and
// reach the ECS agent simulator where it listens; Envoy only, no transparent proxy.
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, copyFile, link, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResultPromise } from 'execa';
import type { AclTokenListEntry } from '@consul-ecs-ts/core';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './aws-admin.ts';
import { configureIamAuthMethod, freePorts, peerBinary, startConsulAndMoto, type ConsulServer, type MotoServer } from './local-stack.ts';
import type { TaskNamespace, TaskNetwork } from './task-network.ts';

/** The self-contained executable `npm run build` makes. */
export const CONSUL_ECS_EXECUTABLE = fileURLToPath(new URL('../../packages/cli/dist/sea/consul-ecs', import.meta.url));
/** The application every simulated task runs. */
export const MESH_APP = fileURLToPath(new URL('./mesh-app.mjs', import.meta.url));
const LINK_LOCAL_RELAY = fileURLToPath(new URL('./link-local-relay.mjs', import.meta.url));
/** Where an awsvpc task reaches the ECS agent (task metadata and credentials). */
export const ECS_AGENT_ADDRESS = '169.254.170.2';
/** The dataplane container's user in the mesh-task module: transparent proxy never redirects its traffic. */
export const PROXY_UID = 5995;
const SERVER_ID_HEADER = 'consul.mesh-tasks.local';
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Thrown by a probe of {@link until} when waiting longer is pointless (a process it waits on has exited). */
export class GaveUp extends Error {}

/** Polls `probe` until it returns something other than undefined; fails after `timeoutMs` with `what` and `detail()`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, detail: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
      if (err instanceof GaveUp) break;
    }
    if (Date.now() > deadline) break;
    await sleep(100);
  }
  const d = detail();
  throw new Error(
    `${what}: ${last instanceof GaveUp ? last.message : `not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`}${d ? `\n${d}` : ''}`,
  );
}

const tail = (text: string, lines = 25) => text.trimEnd().split('\n').slice(-lines).join('\n');

/**
 * Consul (ACLs on, default deny) and moto, listening where the task namespaces
 * reach them (the bridge address) as well as on loopback; the aws-iam auth method
 * with its binding rule; and the proxies' executables where their user (5995) can
 * run them.
 */
export class MeshStack {
  readonly #roles: string[] = [];

  private constructor(
    readonly network: TaskNetwork,
    readonly consul: ConsulServer,
    readonly moto: MotoServer,
    /** Holds `bin/` (envoy, consul-dataplane) and the tasks' directories; mode 0755. */
    readonly dir: string,
  ) {}

  static async start(network: TaskNetwork): Promise<MeshStack> {
    const [consul, moto] = await startConsulAndMoto({ alsoListenOn: network.loopback ? [] : [network.hostAddress] }, { host: network.hostAddress });
    let dir: string | undefined;
    try {
      await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID_HEADER });
      dir = await mkdtemp(join(tmpdir(), 'mesh-tasks-'));
      await chmod(dir, 0o755);
      await mkdir(join(dir, 'bin'), { mode: 0o755 });
      // The peers live under root's home, which user 5995 cannot enter: link them (same file system) or
      // copy them. The executable is copied, so that a build running meanwhile cannot change it under the tasks.
      // On a loopback network the containers run as the current user, who can reach the peers where they are.
      for (const name of ['envoy', 'consul-dataplane'] as const) {
        const source = await realpath(peerBinary(name));
        const target = join(dir, 'bin', name);
        if (network.loopback) {
          await symlink(source, target);
          continue;
        }
        await link(source, target).catch(() => copyFile(source, target));
        await chmod(target, 0o755);
      }
      await copyFile(CONSUL_ECS_EXECUTABLE, join(dir, 'bin', 'consul-ecs'));
      await chmod(join(dir, 'bin', 'consul-ecs'), 0o755);
      return new MeshStack(network, consul, moto, dir);
    } catch (err) {
      await Promise.all([consul.dispose(), moto.dispose()]);
      if (dir) await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Where the tasks reach Consul's HTTP and gRPC ports and moto. */
  get address(): string {
    return this.network.hostAddress;
  }

  /** The directory of the proxies' executables, first on the dataplane's PATH (consul-dataplane runs `envoy` from it). */
  get binDir(): string {
    return join(this.dir, 'bin');
  }

  /** The stack's copy of the self-contained executable, which the tasks' control planes run. */
  get executable(): string {
    return join(this.dir, 'bin', 'consul-ecs');
  }

  /** The `X-Consul-IAM-ServerID` value the auth method requires. */
  get serverIdHeaderValue(): string {
    return SERVER_ID_HEADER;
  }

  /** Secrets of the stack, which no output may contain. */
  secrets(): string[] {
    return [this.consul.managementToken, this.moto.admin.credentials.secretAccessKey];
  }

  /** A task role at /consul-ecs/ tagged with the service name, as the mesh-task module makes. */
  async role(name: string, service: string): Promise<string> {
    const role = await this.moto.admin.createRole({ name, path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: service } });
    this.#roles.push(name);
    return role.arn;
  }

  async deleteRole(name: string): Promise<void> {
    await this.moto.admin.deleteRole(name).catch(() => {});
    const i = this.#roles.indexOf(name);
    if (i >= 0) this.#roles.splice(i, 1);
  }

  /** Registers a cluster's synthetic node, as the consul-ecs controller does once per cluster. */
  async registerClusterNode(clusterArn: string): Promise<void> {
    await this.consul.api('PUT', '/v1/catalog/register', { Node: clusterArn, Address: this.address, NodeMeta: { 'synthetic-node': 'true' } });
  }

  /** Writes the `service-intentions` config entry of `destination`: each source allowed or denied. */
  async setIntentions(destination: string, sources: Record<string, 'allow' | 'deny'>): Promise<void> {
    await this.consul.api('PUT', '/v1/config', {
      Kind: 'service-intentions',
      Name: destination,
      Sources: Object.entries(sources).map(([Name, Action]) => ({ Name, Action })),
    });
  }

  async deleteIntentions(destination: string): Promise<void> {
    await this.consul.api('DELETE', `/v1/config/service-intentions/${encodeURIComponent(destination)}`);
  }

  /** The login tokens Consul holds for a task (login meta carries the task id). */
  async taskTokens(taskId: string): Promise<AclTokenListEntry[]> {
    return (await this.consul.loginTokens()).filter((t) => t.Description?.includes(taskId));
  }

  /**
   * The virtual IP Consul assigned to a service of the mesh: the `consul-virtual`
   * tagged address it puts on the service's sidecar proxies.
   */
  async virtualIp(service: string): Promise<string | undefined> {
    const instances = await this.consul.api<Array<{ ServiceTaggedAddresses?: Record<string, { Address: string }> }>>(
      'GET',
      `/v1/catalog/connect/${encodeURIComponent(service)}`,
    );
    return instances.map((i) => i.ServiceTaggedAddresses?.['consul-virtual']?.Address).find(Boolean);
  }

  async dispose(): Promise<void> {
    for (const name of [...this.#roles]) await this.deleteRole(name);
    await Promise.all([this.consul.dispose(), this.moto.dispose()]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Which dataplane the task runs: Envoy from envoy-bootstrap.json, or consul-dataplane from consul-dataplane.json. */
export type DataplaneKind = 'envoy' | 'consul-dataplane';

/**
 * How the task runs consul-ecs: one long-running `control-plane` container
 * (consul-ecs 0.7's shape, seed 004), or terraform-aws-consul-ecs v0.10's
 * `mesh-init` (until it succeeds) and `health-sync` (as user 5996, which
 * transparent proxy never redirects).
 */
export type ControlPlaneShape = 'control-plane' | 'mesh-init+health-sync';

/** The containers of a simulated mesh task, by their names in the task definition. */
export const CONTAINERS = {
  controlPlane: 'consul-ecs-control-plane',
  meshInit: 'consul-ecs-mesh-init',
  healthSync: 'consul-ecs-health-sync',
  dataplane: 'consul-dataplane',
  app: 'app',
} as const;
export type ContainerName = (typeof CONTAINERS)[keyof typeof CONTAINERS];

/** The health-sync container's user in the mesh-task module. */
export const HEALTH_SYNC_UID = 5996;

export interface MeshTaskOptions {
  stack: MeshStack;
  namespace: TaskNamespace;
  /** Service name and task family. */
  service: string;
  dataplane: DataplaneKind;
  /** Default 'control-plane'. */
  controlPlane?: ControlPlaneShape;
  /** The app's port on 127.0.0.1 (the service port). Default 8080 in a namespace, a free port on a loopback network. */
  appPort?: number;
  upstreams?: Array<{ destinationName: string; localBindPort: number }>;
  /** Transparent proxy (the task is then reported as an EC2 awsvpc task), optionally with Consul DNS. */
  transparentProxy?: false | { consulDns?: boolean; excludeOutboundCIDRs?: string[] };
  /** The app calls this URL again and again (each call is an AppEvent). */
  appCallUrl?: string;
  appCallIntervalMs?: number;
  /** app-entrypoint's `-shutdown-delay`. Default '0s'. */
  shutdownDelay?: string;
  /** ECS cluster name. Default 'mesh'. */
  cluster?: string;
  /** `logLevel` of CONSUL_ECS_CONFIG_JSON (the control plane's and consul-dataplane's). Default 'INFO'. */
  logLevel?: string;
  /** How long each start step may take. Default 60 s. */
  stepTimeoutMs?: number;
  /** Progress, for a demo to print. */
  onProgress?: (message: string) => void;
}

/** Where a task's sidecar listens on its 127.0.0.1 (and its address, for the public listener). */
export interface TaskPorts {
  /** The public listener (mTLS from the rest of the mesh). */
  publicListener: number;
  /** Envoy's ready listener, which the dataplane container's health check dials. */
  ready: number;
  /** Envoy's admin API. */
  admin: number;
}

/** The ports of a task in a network namespace of its own: the defaults of the bootstrap mesh-init writes. */
export const DEFAULT_TASK_PORTS: Readonly<TaskPorts> = { publicListener: 20000, ready: 22000, admin: 19000 };

/** A line the app printed (see mesh-app.mjs). */
export interface AppEvent {
  event: 'listening' | 'call' | 'reply' | 'sigterm' | 'exit';
  at: number;
  id?: number;
  ok?: boolean;
  status?: number;
  body?: string;
  error?: string;
  addresses?: string[];
  connected?: boolean;
  received?: string;
  closed?: boolean;
  timedOut?: boolean;
}

export type AppRequest = { fetch: string } | { lookup: string } | { tcp: { host: string; port: number; send?: string } };

/** A container's process. */
export class ContainerProcess {
  exitedAt: number | undefined;
  exitCode: number | undefined;
  signal: string | undefined;
  #output = '';
  readonly exited: Promise<void>;

  constructor(
    readonly name: ContainerName,
    readonly proc: ResultPromise,
    readonly startedAt: number,
    onExit: (c: ContainerProcess) => void,
  ) {
    proc.stderr?.on('data', (d: Buffer) => (this.#output += d.toString()));
    if (name !== CONTAINERS.app) proc.stdout?.on('data', (d: Buffer) => (this.#output += d.toString()));
    this.exited = proc.then((r) => {
      this.exitedAt = Date.now();
      this.exitCode = r.exitCode ?? undefined;
      this.signal = r.signal ?? undefined;
      onExit(this);
    });
  }

  get running(): boolean {
    return this.exitedAt === undefined;
  }

  /** What it printed (the app's JSON lines are in MeshTask.appEvents instead). */
  output(): string {
    return this.#output;
  }

  signalProcess(signal: NodeJS.Signals): void {
    if (this.running) this.proc.kill(signal);
  }
}

/**
 * When a change in Consul happened, as polling (every 50 ms) saw it: after
 * `notYetAt` (the start of the last look that did not see it; undefined when
 * the first look saw it) and by `seenAt` (the end of the first look that did).
 */
export interface ConsulObservation {
  notYetAt: number | undefined;
  seenAt: number;
}

/** When each step of a task's stop happened (ms since the epoch), as seen by the ECS agent and in Consul. */
export interface ShutdownTimeline {
  /** T0: every running container got SIGTERM. */
  sigtermAt: number;
  /** When each container's process exited, and how. */
  exits: Partial<Record<ContainerName, { at: number; code: number | undefined; signal: string | undefined }>>;
  /** Consul: neither the service instance nor its sidecar passes its checks. */
  unhealthy?: ConsulObservation;
  /** Consul: neither is registered on the cluster's node any more. */
  deregistered?: ConsulObservation;
  /** Consul: no login token of the task is left. */
  loggedOut?: ConsulObservation;
  /** Containers still running at the stop timeout, which got SIGKILL. */
  killed: ContainerName[];
}

/** One simulated awsvpc mesh task in its network namespace. */
export class MeshTask {
  readonly containers = new Map<ContainerName, ContainerProcess>();
  readonly appEvents: AppEvent[] = [];
  readonly sim: EcsAgentSimulator;
  readonly bootstrapDir: string;
  readonly appPort: number;
  #roleName = '';
  #requestId = 0;
  #healthChecks = true;
  #appLine = '';
  #secrets: string[] = [];
  #agentEndpoint: EcsAgentEndpoint | undefined;

  private constructor(
    readonly opts: MeshTaskOptions,
    readonly dir: string,
    sim: EcsAgentSimulator,
    readonly ports: TaskPorts,
    appPort: number,
  ) {
    this.sim = sim;
    this.bootstrapDir = join(dir, 'consul');
    this.appPort = appPort;
  }

  /** False on a loopback network: the task shares the host's network (see the header). */
  get isolated(): boolean {
    return this.opts.namespace.isolated;
  }

  get service(): string {
    return this.opts.service;
  }
  get namespace(): TaskNamespace {
    return this.opts.namespace;
  }
  /** The task's private IP (its namespace's eth0). */
  get address(): string {
    return this.opts.namespace.address;
  }
  get taskId(): string {
    return this.sim.taskId;
  }
  get serviceId(): string {
    return `${this.service}-${this.taskId}`;
  }
  get proxyId(): string {
    return `${this.serviceId}-sidecar-proxy`;
  }
  get node(): string {
    return this.sim.clusterArn;
  }
  /** The copy of the executable mesh-init leaves in the bootstrap dir. */
  get executableCopy(): string {
    return join(this.bootstrapDir, 'consul-ecs');
  }
  get shape(): ControlPlaneShape {
    return this.opts.controlPlane ?? 'control-plane';
  }

  /** CONSUL_ECS_CONFIG_JSON of the task. */
  config(): Record<string, unknown> {
    const { stack } = this.opts;
    const tp = this.opts.transparentProxy;
    return {
      bootstrapDir: this.bootstrapDir,
      logLevel: this.opts.logLevel ?? 'INFO',
      consulServers: {
        hosts: stack.address,
        // The server advertises its loopback address, which the namespaces cannot reach: keep to `hosts`.
        skipServerWatch: true,
        defaults: { tls: false },
        http: { https: false, port: stack.consul.ports.http },
        grpc: { port: stack.consul.ports.grpc },
      },
      consulLogin: { enabled: true, stsEndpoint: stack.moto.url, serverIdHeaderValue: stack.serverIdHeaderValue },
      service: { name: this.service, port: this.appPort },
      proxy: {
        upstreams: this.opts.upstreams ?? [],
        ...(this.isolated ? {} : { publicListenerPort: this.ports.publicListener, healthCheckPort: this.ports.ready }),
      },
      healthSyncContainers: [CONTAINERS.app],
      transparentProxy: tp
        ? {
            enabled: true,
            consulDNS: { enabled: tp.consulDns ?? false },
            ...(tp.excludeOutboundCIDRs ? { excludeOutboundCIDRs: tp.excludeOutboundCIDRs } : {}),
          }
        : { enabled: false },
    };
  }

  /** The environment the ECS agent gives every container: its endpoints at 169.254.170.2. */
  containerEnv(): Record<string, string> {
    if (!this.isolated) return { ...this.sim.containerEnv(), PATH: SYSTEM_PATH, HOME: this.dir };
    return { ...agentContainerEnv(this.sim), PATH: SYSTEM_PATH, HOME: this.dir };
  }

  /**
   * Starts the task as ECS would: the control plane; the dataplane once the task
   * is initialised; the app once the dataplane is healthy. Resolves when Consul
   * has the service and its sidecar passing. On failure everything is undone.
   */
  static async start(opts: MeshTaskOptions): Promise<MeshTask> {
    const { stack } = opts;
    const isolated = opts.namespace.isolated;
    if (!isolated && (opts.dataplane !== 'envoy' || opts.transparentProxy)) {
      throw new Error(`${opts.service}: on a loopback network a task runs Envoy (not consul-dataplane) and no transparent proxy`);
    }
    const free = isolated ? [] : await freePorts(4);
    const ports: TaskPorts = isolated ? { ...DEFAULT_TASK_PORTS } : { publicListener: free[0]!, ready: free[1]!, admin: free[2]! };
    const appPort = opts.appPort ?? (isolated ? 8080 : free[3]!);
    const dir = await mkdtemp(join(stack.dir, `${opts.service}-`));
    await chmod(dir, 0o755);
    const ipv4 = opts.namespace.address;
    const roleName = `${opts.service}-task-${Math.random().toString(36).slice(2, 8)}`;
    const shape = opts.controlPlane ?? 'control-plane';
    let task: MeshTask | undefined;
    try {
      const roleArn = await stack.role(roleName, opts.service);
      const credentials = assumeRoleCredentials({ stsEndpoint: stack.moto.url, credentials: stack.moto.admin.credentials, roleArn });
      const secrets: string[] = [];
      const consulContainers =
        shape === 'control-plane'
          ? [{ name: CONTAINERS.controlPlane, ipv4 }]
          : [
              { name: CONTAINERS.meshInit, ipv4 },
              { name: CONTAINERS.healthSync, ipv4 },
            ];
      const sim = new EcsAgentSimulator({
        family: opts.service,
        cluster: opts.cluster ?? 'mesh',
        // Transparent proxy is for awsvpc tasks on EC2 (mesh-init refuses it elsewhere).
        launchType: opts.transparentProxy ? 'EC2' : 'FARGATE',
        networkMode: 'awsvpc',
        credentials: async () => {
          const doc = await credentials();
          // The task role's credentials are secrets too.
          secrets.push(doc.SecretAccessKey, ...(doc.Token ? [doc.Token] : []));
          return doc;
        },
        containers: [
          ...consulContainers,
          { name: CONTAINERS.dataplane, hasHealthCheck: true, health: 'UNKNOWN', ipv4 },
          { name: CONTAINERS.app, hasHealthCheck: true, health: 'UNKNOWN', ipv4 },
        ],
      });
      task = new MeshTask(opts, dir, sim, ports, appPort);
      task.#roleName = roleName;
      task.#secrets = secrets;
      await mkdir(task.bootstrapDir, { mode: 0o755 });
      await chmod(task.bootstrapDir, 0o755);
      await sim.start();
      task.#secrets.push(sim.authorizationToken);
      if (isolated) task.#agentEndpoint = await EcsAgentEndpoint.start(opts.namespace, sim, dir);
      await stack.registerClusterNode(sim.clusterArn);
      await task.#run(opts.stepTimeoutMs ?? 60_000);
      return task;
    } catch (err) {
      if (task) await task.dispose();
      else {
        await stack.deleteRole(roleName);
        await rm(dir, { recursive: true, force: true });
      }
      throw err;
    }
  }

  #progress(message: string): void {
    this.opts.onProgress?.(`[${this.service}] ${message}`);
  }

  async #run(stepMs: number): Promise<void> {
    const { stack } = this.opts;
    const env = this.containerEnv();
    const configJson = JSON.stringify(this.config());
    const gaveUp = (c: ContainerProcess) => {
      if (!c.running) throw new GaveUp(`${c.name} exited (${c.exitCode ?? c.signal})`);
    };

    // consul-ecs as root (transparent proxy needs NET_ADMIN): mesh-init's work, then health-sync's.
    if (this.shape === 'control-plane') {
      const cp = this.#spawn(CONTAINERS.controlPlane, [stack.executable, 'control-plane'], { ...env, CONSUL_ECS_CONFIG_JSON: configJson });
      this.#progress('control-plane started');
      await until(
        `${this.service}: the control plane initialising the task`,
        stepMs,
        async () => {
          if (/successfully initialized the task/.test(cp.output())) return true;
          gaveUp(cp);
          return undefined;
        },
        () => this.describe(),
      );
    } else {
      const mi = this.#spawn(CONTAINERS.meshInit, [stack.executable, 'mesh-init'], { ...env, CONSUL_ECS_CONFIG_JSON: configJson });
      this.#progress('mesh-init started');
      await until(
        `${this.service}: mesh-init succeeding`,
        stepMs,
        async () => (mi.running ? undefined : mi.exitCode === 0 ? true : gaveUp(mi)),
        () => this.describe(),
      );
    }
    this.#secrets.push((await readFile(join(this.bootstrapDir, 'service-token'), 'utf8')).trim());
    const dpConfig = JSON.parse(await readFile(join(this.bootstrapDir, 'consul-dataplane.json'), 'utf8'));
    const bearer = dpConfig?.consul?.credentials?.login?.bearerToken;
    if (bearer) this.#secrets.push(bearer);
    this.#progress('the task is registered and its bootstrap files written');
    // A container's user, as the task definition has it; on a loopback network the current user.
    const asUser = (uid: number) => (this.isolated ? ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'] : []);
    if (this.shape === 'mesh-init+health-sync') {
      this.#spawn(CONTAINERS.healthSync, [...asUser(HEALTH_SYNC_UID), this.executableCopy, 'health-sync'], { ...env, CONSUL_ECS_CONFIG_JSON: configJson });
      this.#progress('health-sync started');
    }

    // The dataplane, under envoy-entrypoint, as the proxy's user.
    const bin = stack.binDir;
    const bootstrap = this.isolated ? join(this.bootstrapDir, 'envoy-bootstrap.json') : await this.#bootstrapWithAdminPort();
    const proxyCommand =
      this.opts.dataplane === 'envoy'
        ? [join(bin, 'envoy'), '-c', bootstrap, '--disable-hot-restart', '-l', 'warning']
        : [join(bin, 'consul-dataplane'), '-config-file', join(this.bootstrapDir, 'consul-dataplane.json')];
    const dp = this.#spawn(CONTAINERS.dataplane, [...asUser(PROXY_UID), this.executableCopy, 'envoy-entrypoint', ...proxyCommand], {
      ...env,
      PATH: `${bin}:${SYSTEM_PATH}`,
    });
    this.#progress(
      `${this.opts.dataplane === 'envoy' ? 'Envoy' : 'consul-dataplane'} started under envoy-entrypoint${this.isolated ? `, as user ${PROXY_UID}` : ''}`,
    );
    void this.#dataplaneHealthChecks();
    await until(
      `${this.service}: the dataplane healthy (net-dial 127.0.0.1:${this.ports.ready})`,
      stepMs,
      async () => {
        if (await this.#healthy(CONTAINERS.dataplane)) return true;
        gaveUp(dp);
        return undefined;
      },
      () => this.describe(),
    );
    this.#progress(
      `the dataplane is healthy: ${this.opts.dataplane === 'envoy' ? 'Envoy' : 'consul-dataplane'} is ready (net-dial 127.0.0.1:${this.ports.ready} passes)`,
    );

    // The app, under app-entrypoint.
    const app = this.#spawn(
      CONTAINERS.app,
      [this.executableCopy, 'app-entrypoint', '-shutdown-delay', this.opts.shutdownDelay ?? '0s', process.execPath, MESH_APP],
      {
        PATH: SYSTEM_PATH,
        APP_SERVICE: this.service,
        APP_TASK_ID: this.taskId,
        APP_PORT: String(this.appPort),
        ...(this.opts.appCallUrl ? { APP_CALL_URL: this.opts.appCallUrl, APP_CALL_INTERVAL_MS: String(this.opts.appCallIntervalMs ?? 250) } : {}),
      },
      true,
    );
    app.proc.stdout?.on('data', (d: Buffer) => this.#appOutput(d.toString()));
    await until(
      `${this.service}: the app listening`,
      stepMs,
      async () => {
        if (this.appEvents.some((e) => e.event === 'listening')) return true;
        gaveUp(app);
        return undefined;
      },
      () => this.describe(),
    );
    this.sim.setHealth(CONTAINERS.app, 'HEALTHY');
    this.#progress('the app is listening');

    await until(
      `${this.service}: Consul has the service and its sidecar passing`,
      stepMs,
      async () => ((await this.passingInConsul()) ? true : undefined),
      () => this.describe(),
    );
    this.#progress('Consul has the service and its sidecar passing');
  }

  /**
   * envoy-bootstrap.json with Envoy's admin API on this task's admin port instead
   * of 19000 (and the ready listener's route to it), beside it; returns the new file.
   */
  async #bootstrapWithAdminPort(): Promise<string> {
    const file = join(this.bootstrapDir, 'envoy-bootstrap.json');
    const bootstrap = JSON.parse(await readFile(file, 'utf8'));
    bootstrap.admin.address.socket_address.port_value = this.ports.admin;
    for (const c of bootstrap.static_resources?.clusters ?? []) {
      if (c.name === 'self_admin') c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = this.ports.admin;
    }
    const local = join(this.bootstrapDir, 'envoy-bootstrap.local.json');
    // It holds the service token, as the original does.
    await writeFile(local, JSON.stringify(bootstrap), { mode: 0o600 });
    return local;
  }

  #spawn(name: ContainerName, argv: string[], env: Record<string, string>, stdin = false): ContainerProcess {
    // No forced SIGKILL after a SIGTERM (execa's default): the stop timeout is stop()'s to keep.
    const proc = this.namespace.spawn(argv, {
      env,
      extendEnv: false,
      stdin: stdin ? 'pipe' : 'ignore',
      buffer: false,
      cleanup: true,
      forceKillAfterDelay: false,
    });
    const c = new ContainerProcess(name, proc, Date.now(), (exited) => {
      // The ECS agent reports an exited container STOPPED.
      this.sim.stopContainer(exited.name);
      const what =
        exited.name === CONTAINERS.dataplane
          ? `${exited.name} (${this.opts.dataplane === 'envoy' ? 'Envoy' : 'consul-dataplane'} under envoy-entrypoint)`
          : exited.name;
      this.#progress(`${what} exited (${exited.exitCode ?? exited.signal})${exited.name === CONTAINERS.app ? this.#lastCall(exited.exitedAt!) : ''}`);
    });
    this.containers.set(name, c);
    if (this.opts.onProgress && name !== CONTAINERS.app && name !== CONTAINERS.dataplane) {
      for (const stream of [proc.stdout, proc.stderr]) {
        let partial = '';
        stream?.on('data', (d: Buffer) => {
          const lines = (partial + d.toString()).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) this.#consulEcsLine(line);
        });
      }
    }
    return c;
  }

  /** Progress for the steps of consul-ecs's log a reader follows (login, registration, the stop's steps). */
  #consulEcsLine(line: string): void {
    const field = (key: string) => new RegExp(`\\b${key}=("[^"]*"|\\S+)`).exec(line)?.[1]?.replace(/^"|"$/g, '');
    if (/logged in to Consul/.test(line))
      this.#progress(`consul-ecs logged in to Consul (auth method ${field('method') ?? '?'}, with the task role's credentials)`);
    else if (/(service|proxy) registered successfully/.test(line))
      this.#progress(`consul-ecs registered ${field('id') ?? field('name') ?? 'a service'} in Consul`);
    else if (/set all Consul health checks to critical/.test(line)) this.#progress("consul-ecs set the task's Consul checks critical");
    else if (/dataplane has stopped/.test(line)) this.#progress('consul-ecs saw the dataplane container stop');
    else if (/\bderegistered\b/.test(line)) this.#progress(`consul-ecs deregistered ${field('id') ?? 'a service'}`);
    else if (/logged out of Consul/.test(line)) this.#progress('consul-ecs logged out of Consul');
  }

  /** `; its last call …` for the app's exit message, when it made calls. */
  #lastCall(exitedAt: number): string {
    const last = this.appEvents.filter((e) => e.event === 'call').at(-1);
    if (!last) return '';
    let from = '';
    try {
      from = String((JSON.parse(last.body ?? '') as { service?: unknown }).service ?? '');
    } catch {
      // not the mesh app's answer
    }
    const outcome = last.ok ? `answered (${last.status}${from ? ` from ${from}` : ''})` : `failed (${last.status ?? last.error})`;
    return `; its last call, ${exitedAt - last.at} ms before, was ${outcome}`;
  }

  #appOutput(text: string): void {
    this.#appLine += text;
    const lines = this.#appLine.split('\n');
    this.#appLine = lines.pop() ?? '';
    for (const line of lines) {
      try {
        this.appEvents.push(JSON.parse(line) as AppEvent);
      } catch {
        // not one of the app's lines
      }
    }
  }

  async #healthy(name: ContainerName): Promise<true | undefined> {
    return this.sim.task().Containers.find((c) => c.Name === name)?.Health?.status === 'HEALTHY' ? true : undefined;
  }

  /** The dataplane container's health check, as the task definition has it, every second while it runs. */
  async #dataplaneHealthChecks(): Promise<void> {
    const dp = this.containers.get(CONTAINERS.dataplane)!;
    while (dp.running && this.#healthChecks) {
      const r = await this.namespace.run([this.executableCopy, 'net-dial', `127.0.0.1:${this.ports.ready}`], {
        env: { PATH: SYSTEM_PATH },
        extendEnv: false,
        timeout: 5000,
      });
      if (!dp.running || !this.#healthChecks) break;
      this.sim.setHealth(CONTAINERS.dataplane, r.exitCode === 0 ? 'HEALTHY' : 'UNHEALTHY');
      await sleep(1000);
    }
  }

  /** True when Consul has both the service instance and its sidecar passing. */
  async passingInConsul(): Promise<boolean> {
    const passing = await this.#passingIds();
    return passing.has(this.serviceId) && passing.has(this.proxyId);
  }

  async #passingIds(): Promise<Set<string>> {
    const { consul } = this.opts.stack;
    const ids = new Set<string>();
    for (const name of [this.service, `${this.service}-sidecar-proxy`]) {
      const entries = await consul.api<Array<{ Service: { ID: string } }>>('GET', `/v1/health/service/${encodeURIComponent(name)}?passing=true`);
      for (const e of entries) ids.add(e.Service.ID);
    }
    return ids;
  }

  /** The IDs of this task's service instances registered in Consul. */
  async registeredIds(): Promise<string[]> {
    const services = await this.opts.stack.consul.nodeServices(this.node);
    return services.map((s) => s.ID).filter((id) => id === this.serviceId || id === this.proxyId);
  }

  /** Sends the app a request (see mesh-app.mjs) and waits for its reply. */
  async request(req: AppRequest, timeoutMs = 10_000): Promise<AppEvent> {
    const app = this.containers.get(CONTAINERS.app);
    if (!app?.running) throw new Error(`${this.service}: the app is not running`);
    const id = ++this.#requestId;
    app.proc.stdin?.write(`${JSON.stringify({ id, ...req })}\n`);
    return until(`${this.service}: the app's reply to ${JSON.stringify(req)}`, timeoutMs, async () =>
      this.appEvents.find((e) => e.event === 'reply' && e.id === id),
    );
  }

  /** The app's periodic calls (appCallUrl) made at or after `since`. */
  callsSince(since: number): AppEvent[] {
    return this.appEvents.filter((e) => e.event === 'call' && e.at >= since);
  }

  /** Waits for a call made after `since` that `match` accepts; fails showing the last calls. */
  async waitForCall(what: string, since: number, match: (e: AppEvent) => boolean, timeoutMs = 15_000): Promise<AppEvent> {
    return until(
      `${this.service}: ${what}`,
      timeoutMs,
      async () => this.callsSince(since).find(match),
      () =>
        `the last calls:\n${this.callsSince(since)
          .slice(-5)
          .map((e) => JSON.stringify(e))
          .join('\n')}`,
    );
  }

  /**
   * Stops the task as ECS does: SIGTERM to every running container at once (T0),
   * each container marked STOPPED as it exits, SIGKILL to any still running
   * after `stopTimeoutMs` (ECS's default stop timeout is 30 s). Meanwhile
   * watches Consul for the service going unhealthy, its deregistration and the
   * logout.
   */
  async stop(stopTimeoutMs = 30_000): Promise<ShutdownTimeline> {
    this.#healthChecks = false;
    const { stack } = this.opts;
    const timeline: ShutdownTimeline = { sigtermAt: Date.now(), exits: {}, killed: [] };
    this.#progress('stopping the task: SIGTERM to every container');
    const running = [...this.containers.values()].filter((c) => c.running);
    for (const c of running) c.signalProcess('SIGTERM');
    let allExited = false;
    const exits = Promise.all(running.map((c) => c.exited)).then(() => (allExited = true));
    const killer = setTimeout(() => {
      for (const c of running) {
        if (c.running) {
          timeline.killed.push(c.name);
          c.signalProcess('SIGKILL');
        }
      }
    }, stopTimeoutMs);
    // Consul as the rest of the mesh sees it, until everything has exited and
    // is gone from Consul (or a little after the last exit).
    let settledAt: number | undefined;
    let previousLook: number | undefined;
    for (;;) {
      const look = Date.now();
      try {
        const passing = await this.#passingIds();
        const unhealthy = !passing.has(this.serviceId) && !passing.has(this.proxyId);
        const deregistered = (await this.registeredIds()).length === 0;
        const loggedOut = (await stack.taskTokens(this.taskId)).length === 0;
        const seen = { notYetAt: previousLook, seenAt: Date.now() };
        if (unhealthy && !timeline.unhealthy) this.#progress('Consul: the service and its sidecar no longer pass their checks');
        if (deregistered && !timeline.deregistered) this.#progress('Consul: neither the service nor its sidecar is registered any more');
        if (loggedOut && !timeline.loggedOut) this.#progress('Consul: no login token of the task is left');
        if (unhealthy) timeline.unhealthy ??= seen;
        if (deregistered) timeline.deregistered ??= seen;
        if (loggedOut) timeline.loggedOut ??= seen;
        previousLook = look;
      } catch {
        // Consul unreachable for a moment: look again
      }
      if (allExited) {
        settledAt ??= Date.now();
        const seenAll = timeline.unhealthy && timeline.deregistered && timeline.loggedOut;
        if (seenAll || Date.now() - settledAt > 3000) break;
      }
      await sleep(50);
    }
    await exits;
    clearTimeout(killer);
    for (const c of running) timeline.exits[c.name] = { at: c.exitedAt!, code: c.exitCode, signal: c.signal };
    this.#progress('the task has stopped');
    return timeline;
  }

  /** Secrets this task handled (service token, bearer token, the simulator's authorization token). */
  secrets(): string[] {
    return [...this.#secrets];
  }

  /** Everything every container printed, and the app's events. */
  allOutput(): string {
    return [...[...this.containers.values()].map((c) => c.output()), ...this.appEvents.map((e) => JSON.stringify(e))].join('\n');
  }

  /** The state of each container and the end of its output, for a failure message. */
  describe(): string {
    return [...this.containers.values()]
      .map((c) => `--- ${this.service}/${c.name} (${c.running ? 'running' : `exited ${c.exitCode ?? c.signal}`}):\n${tail(c.output())}`)
      .join('\n');
  }

  /**
   * Kills what still runs in the task's namespace, and removes what a task
   * killed without a graceful stop leaves in Consul (as the controller's task
   * reaper would: its service instances and login tokens), its role and files.
   */
  async dispose(): Promise<void> {
    this.#healthChecks = false;
    const { stack } = this.opts;
    // On a loopback network no namespace holds what the containers started (Envoy, in a process group of its own under envoy-entrypoint).
    const stragglers = this.isolated ? [] : [...this.containers.values()].filter((c) => c.running && c.proc.pid).flatMap((c) => descendants(c.proc.pid!));
    for (const c of this.containers.values()) c.signalProcess('SIGKILL');
    for (const pid of [...stragglers, ...(await this.namespace.pids())]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await Promise.all([...this.containers.values()].map((c) => c.exited));
    for (const id of await this.registeredIds().catch(() => [])) {
      await stack.consul.api('PUT', '/v1/catalog/deregister', { Node: this.node, ServiceID: id }).catch(() => {});
    }
    for (const t of await stack.taskTokens(this.taskId).catch(() => [])) {
      await stack.consul.api('DELETE', `/v1/acl/token/${t.AccessorID}`).catch(() => {});
    }
    await this.#agentEndpoint?.close();
    await this.sim.stop();
    await stack.deleteRole(this.#roleName);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The environment the ECS agent gives a container of an awsvpc task: its endpoints at {@link ECS_AGENT_ADDRESS}. */
export function agentContainerEnv(sim: EcsAgentSimulator): Record<string, string> {
  const env = sim.containerEnv();
  const atAgent = (uri: string) => `http://${ECS_AGENT_ADDRESS}${new URL(uri).pathname}`;
  return {
    ...env,
    ECS_CONTAINER_METADATA_URI_V4: atAgent(env.ECS_CONTAINER_METADATA_URI_V4!),
    AWS_CONTAINER_CREDENTIALS_FULL_URI: atAgent(env.AWS_CONTAINER_CREDENTIALS_FULL_URI!),
  };
}

/**
 * 169.254.170.2:80 in a task's network namespace, as the ECS agent serves it: a
 * relay there (link-local-relay.mjs) to a Unix socket of this process, which
 * passes each connection on to the ECS agent simulator. Every process in the
 * namespace reaches it, containers joined to the namespace too.
 */
export class EcsAgentEndpoint {
  private constructor(
    private readonly server: Server,
    /** The sockets of the connections through it, both ends. */
    private readonly connections: Set<Socket>,
    private readonly relay: ResultPromise | undefined,
  ) {}

  /** Starts it for `sim` in `namespace`; its Unix socket goes in `dir`. */
  static async start(namespace: TaskNamespace, sim: EcsAgentSimulator, dir: string): Promise<EcsAgentEndpoint> {
    const agent = new URL(sim.metadataUri);
    const socketPath = join(dir, 'ecs-agent.sock');
    const connections = new Set<Socket>();
    const server = createServer((c) => {
      const up = connect(Number(agent.port), agent.hostname);
      connections.add(c).add(up);
      c.pipe(up).pipe(c);
      const close = () => {
        c.destroy();
        up.destroy();
        connections.delete(c);
        connections.delete(up);
      };
      c.on('close', close);
      up.on('close', close);
      c.on('error', close);
      up.on('error', close);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    const added = await namespace.run(['ip', 'addr', 'add', `${ECS_AGENT_ADDRESS}/32`, 'dev', 'lo']);
    if (added.exitCode !== 0) {
      await new EcsAgentEndpoint(server, connections, undefined).close();
      throw new Error(`cannot add ${ECS_AGENT_ADDRESS} to ${namespace.name}: ${String(added.stderr)}`);
    }
    const relay = namespace.spawn([process.execPath, LINK_LOCAL_RELAY, ECS_AGENT_ADDRESS, '80', socketPath], {
      stdin: 'ignore',
      buffer: false,
      cleanup: true,
      all: true,
    });
    const endpoint = new EcsAgentEndpoint(server, connections, relay);
    let out = '';
    relay.all?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await until(`the ECS agent endpoint at ${ECS_AGENT_ADDRESS}:80 in ${namespace.name}`, 10_000, async () => {
        if (relay.exitCode !== null) throw new GaveUp(`the relay exited: ${out}`);
        return out.includes('listening') ? true : undefined;
      });
    } catch (err) {
      await endpoint.close();
      throw err;
    }
    return endpoint;
  }

  /** Stops the relay and closes the socket and every connection through it. */
  async close(): Promise<void> {
    this.relay?.kill('SIGKILL');
    await this.relay?.catch(() => {});
    for (const c of this.connections) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The processes under `pid` (children, theirs, …), from /proc. */
export function descendants(pid: number): number[] {
  const children: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      children.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    }
  } catch {
    // gone
  }
  return children.flatMap((child) => [child, ...descendants(child)]);
}
