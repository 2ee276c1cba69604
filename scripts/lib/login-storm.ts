// A login storm: many simulated ECS tasks of one service start mesh-init at the same
// moment against the same Consul and moto, as a deployment that scales out (or a
// cluster that restarts) does. Shared by scripts/bench-login-storm.ts and
// test/integration/login-storm.test.ts.
//
// Every task has its own ECS agent simulator (task metadata and the task role's
// credentials) and its own bootstrap dir; all tasks share the service's IAM role and
// the cluster's node, as the tasks of one ECS service do. The Consul servers' HTTP
// API is reached through a counting proxy that tallies every answer's status, so
// the 429s and 503s of Consul's request rate limits show up whoever sent them.
import { once } from 'node:events';
import { createServer as createTcpServer, connect as tcpConnect, type Server as TcpServer, type Socket } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { AclToken, AclTokenListEntry } from '@consul-ecs-ts/core';
import { assumeRoleCredentials, EcsAgentSimulator, type ContainerCredentialsDocument } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './aws-admin.ts';
import { GNU_TIME } from './bench.ts';
import { ConsulCluster } from './consul-cluster.ts';
import { CountingProxy, countByOperationAndStatus } from './counting-proxy.ts';
import { MotoServer } from './local-stack.ts';

export const STORM_SERVER_ID = 'consul.storm.local';
export const STORM_SERVICE = 'web';
/** The line both consul-ecs and ours log when mesh-init is done. */
export const INITIALISED = 'successfully initialized the task';

/** Consul's request rate limits (`limits.request_limits`), per server. */
export interface RequestLimits {
  readRate: number;
  writeRate: number;
}

/** The server config that turns the request rate limits on, enforcing. */
export function requestLimitsConfig(limits: RequestLimits): Record<string, unknown> {
  return { limits: { request_limits: { mode: 'enforcing', read_rate: limits.readRate, write_rate: limits.writeRate } } };
}

/** A TCP proxy on 127.0.0.1 handing each connection to the next backend in turn (for gRPC, which the counting proxy does not read). */
export class TcpRoundRobin {
  readonly #sockets = new Set<Socket>();
  #server: TcpServer | undefined;
  #next = 0;
  port = 0;

  constructor(readonly backends: Array<{ host: string; port: number }>) {}

  async start(): Promise<this> {
    this.#server = createTcpServer((client) => {
      const backend = this.backends[this.#next++ % this.backends.length]!;
      const upstream = tcpConnect(backend.port, backend.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => (s === client ? upstream : client).destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    if (this.#server) await new Promise<void>((r) => this.#server!.close(() => r()));
  }
}

/** `GET /v1/catalog/node-services/:id`: the path without what names one thing. */

/** One way of running mesh-init: ours (the executable, or the bundle on a Node.js) or the anchor. */
export interface Contender {
  name: string;
  /** The command line, before `mesh-init`. */
  argv: string[];
  /**
   * Whether its mesh-init leaves the task logged in with the token in
   * `<bootstrapDir>/service-token` (ours), or logs out on exit and leaves the
   * login to consul-dataplane (the anchor: consul-server-connection-manager logs
   * in over gRPC and out again when mesh-init stops).
   */
  keepsLoginToken: boolean;
}

/** What one task's mesh-init did in a storm. */
export interface TaskRun {
  taskId: string;
  bootstrapDir: string;
  exitCode: number | undefined;
  /** From the storm's start to the "successfully initialized" line; NaN when it never came. */
  initMs: number;
  exitMs: number;
  /** Peak RSS in kB (under GNU time), NaN otherwise. */
  peakRssKb: number;
  /** User and system CPU time in ms (under GNU time), NaN otherwise. */
  cpuMs: number;
  output: string;
}

const RUSAGE_MARK = 'storm-task-rusage';

/** CPU time and peak RSS from the `storm-task-rusage <user s> <system s> <max RSS kB>` line GNU time printed last. */
function resourceUsage(output: string): { cpuMs: number; peakRssKb: number } {
  const m = [...output.matchAll(new RegExp(`^${RUSAGE_MARK} ([\\d.]+) ([\\d.]+) (\\d+)$`, 'gm'))].at(-1);
  return m ? { cpuMs: (Number(m[1]) + Number(m[2])) * 1000, peakRssKb: Number(m[3]) } : { cpuMs: Number.NaN, peakRssKb: Number.NaN };
}

export interface StormResult {
  contender: Contender;
  runs: TaskRun[];
  /** Answers of the Consul servers' HTTP API, by `METHOD route status`. */
  httpAnswers: Map<string, number>;
  /** The machine's used memory (MemTotal − MemAvailable) at its peak during the storm, less what it was before, in kB. */
  machineMemoryPeakKb: number;
  /** WARN and ERROR lines of every task's log, by their message. */
  logProblems: Map<string, number>;
  wallMs: number;
}

/** The machine's used memory in kB: MemTotal − MemAvailable. */
export function usedMemoryKb(): number {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return kb('MemTotal') - kb('MemAvailable');
}

/** WARN and ERROR lines by message (hclog's `[LEVEL] message: fields`), the fields and addresses left out. */
export function countLogProblems(output: string, into = new Map<string, number>()): Map<string, number> {
  for (const line of output.split('\n')) {
    const m = /\[(WARN|ERROR)\]\s+(.*)$/.exec(line);
    if (!m) continue;
    const message = m[2]!
      .replace(/^[\w.-]+:\s(?=[a-z])/, '') // a Go logger's name, e.g. "consul-server-connection-manager: "
      .split(/: (?=[a-z-]+=)|\s+(?=[a-z-]+=)/)[0]!
      .replace(/\d+\.\d+\.\d+\.\d+(:\d+)?/g, '<addr>')
      .replace(/[0-9a-f]{32}/g, '<task>')
      .slice(0, 140)
      .trim();
    const key = `${m[1]} ${message}`;
    into.set(key, (into.get(key) ?? 0) + 1);
  }
  return into;
}

export interface LoginStormStackOptions {
  tasks: number;
  /** Consul servers in the cluster; default 3. */
  servers?: number;
  /** Consul's request rate limits, enforcing; none: off. */
  requestLimits?: RequestLimits;
}

/**
 * Consul (ACLs, the aws-iam auth method pointed at moto) and moto, the service's
 * role, the cluster's node, a counting proxy in front of Consul's HTTP API, and
 * one ECS agent simulator per task.
 */
export class LoginStormStack {
  readonly sims: EcsAgentSimulator[] = [];
  /** The bootstrap dirs of the last storm. */
  #taskDirs: string[] = [];

  private constructor(
    readonly consul: ConsulCluster,
    readonly moto: MotoServer,
    /** In front of the servers' HTTP API: what the tasks see as 127.0.0.1:<port>. */
    readonly proxy: CountingProxy,
    /** In front of the servers' gRPC port (the anchor's login and server watch). */
    readonly grpc: TcpRoundRobin,
  ) {}

  static async start(opts: LoginStormStackOptions): Promise<LoginStormStack> {
    const [consul, moto] = await Promise.allSettled([
      ConsulCluster.start({ servers: opts.servers ?? 3, serverConfig: opts.requestLimits ? requestLimitsConfig(opts.requestLimits) : {} }),
      MotoServer.start(),
    ]);
    if (consul.status === 'rejected' || moto.status === 'rejected') {
      if (consul.status === 'fulfilled') await consul.value.dispose();
      if (moto.status === 'fulfilled') await moto.value.dispose();
      throw consul.status === 'rejected' ? consul.reason : (moto as PromiseRejectedResult).reason;
    }
    const cluster = consul.value;
    const proxy = await CountingProxy.start({ target: cluster.servers.map((s) => `http://${s.address}:${cluster.ports.http}`), maxSockets: Infinity });
    const grpc = new TcpRoundRobin(cluster.servers.map((s) => ({ host: s.address, port: cluster.ports.grpc })));
    const stack = new LoginStormStack(cluster, moto.value, proxy, grpc);
    try {
      await grpc.start();
      await cluster.configureIamAuthMethod(moto.value, { serverIdHeaderValue: STORM_SERVER_ID });
      const role = await moto.value.admin.createRole({ name: 'storm-task', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: STORM_SERVICE } });
      // The tasks of one service share its role: one AssumeRole, whose credentials every
      // task's agent hands out (the ECS agent holds them and rotates them itself).
      const source = assumeRoleCredentials({ stsEndpoint: moto.value.url, credentials: moto.value.admin.credentials, roleArn: role.arn });
      let held: Promise<ContainerCredentialsDocument> | undefined;
      const credentials = () => (held ??= source());
      for (let i = 0; i < opts.tasks; i++) {
        const sim = await new EcsAgentSimulator({
          family: STORM_SERVICE,
          credentials,
          containers: [
            { name: 'app', hasHealthCheck: true, health: 'HEALTHY' },
            { name: 'consul-dataplane', hasHealthCheck: true, health: 'HEALTHY' },
          ],
        }).start();
        stack.sims.push(sim);
      }
      await credentials();
      // As the controller does: login tokens may not create the node.
      await cluster.api('PUT', '/v1/catalog/register', { Node: stack.clusterNode, Address: '127.0.0.1', NodeMeta: { 'synthetic-node': 'true' } });
      return stack;
    } catch (err) {
      await stack.dispose();
      throw err;
    }
  }

  /** The cluster's synthetic node, where every task registers. */
  get clusterNode(): string {
    return this.sims[0]?.clusterArn ?? 'arn:aws:ecs:us-east-1:123456789012:cluster/test-cluster';
  }

  /**
   * consul-ecs's config for a task: the servers at 127.0.0.1, HTTP through the
   * counting proxy and gRPC through a TCP proxy, each handing connections to the
   * servers in turn, as a DNS name of the servers would.
   */
  config(bootstrapDir: string): Record<string, unknown> {
    return {
      bootstrapDir,
      consulServers: {
        hosts: '127.0.0.1',
        defaults: { tls: false },
        http: { https: false, port: this.proxy.port },
        grpc: { port: this.grpc.port },
      },
      consulLogin: { enabled: true, stsEndpoint: this.moto.url, serverIdHeaderValue: STORM_SERVER_ID },
      service: { name: STORM_SERVICE, port: 8080 },
      // As terraform's mesh-task always writes it; the anchor dereferences it.
      proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
      healthSyncContainers: ['app'],
      transparentProxy: { enabled: false },
    };
  }

  /**
   * Starts every task's mesh-init at once and waits for all to exit. With `peakRss`
   * each runs under GNU time. A task still running after `timeoutMs` is killed.
   */
  async storm(contender: Contender, opts: { peakRss?: boolean; timeoutMs?: number; executable?: string } = {}): Promise<StormResult> {
    this.proxy.reset();
    const dirs = await Promise.all(this.sims.map(() => mkdtemp(join(tmpdir(), 'storm-task-'))));
    this.#taskDirs.push(...dirs);
    const baseline = usedMemoryKb();
    let memoryPeak = baseline;
    const sampler = setInterval(() => (memoryPeak = Math.max(memoryPeak, usedMemoryKb())), 50);
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
    // Under GNU time, its last line gives each task's CPU time and peak RSS.
    const [file, args] = opts.peakRss
      ? [GNU_TIME, ['-f', `${RUSAGE_MARK} %U %S %M`, ...contender.argv, 'mesh-init']]
      : [contender.argv[0]!, [...contender.argv.slice(1), 'mesh-init']];
    const children: Array<{ proc: ResultPromise; initMs: number; output: string }> = this.sims.map((sim, i) => {
      const env: Record<string, string> = {
        ...sim.containerEnv(),
        CONSUL_ECS_CONFIG_JSON: JSON.stringify(this.config(dirs[i]!)),
        PATH: process.env.PATH ?? '',
        ...(opts.executable ? { CONSUL_ECS_EXECUTABLE: opts.executable } : {}),
      };
      const proc = execa(file, args, { env, extendEnv: false, reject: false, timeout: opts.timeoutMs ?? 300_000, buffer: false });
      const child = { proc, initMs: Number.NaN, output: '' };
      const watch = (chunk: Buffer) => {
        child.output += chunk.toString('utf8');
        if (Number.isNaN(child.initMs) && child.output.includes(INITIALISED)) child.initMs = elapsed();
      };
      proc.stdout!.on('data', watch);
      proc.stderr!.on('data', watch);
      return child;
    });
    const runs: TaskRun[] = await Promise.all(
      children.map(async (child, i) => {
        const r = await child.proc;
        return {
          taskId: this.sims[i]!.taskId,
          bootstrapDir: dirs[i]!,
          exitCode: r.exitCode,
          initMs: child.initMs,
          exitMs: elapsed(),
          ...(opts.peakRss ? resourceUsage(child.output) : { peakRssKb: Number.NaN, cpuMs: Number.NaN }),
          output: child.output,
        };
      }),
    );
    const wallMs = elapsed();
    clearInterval(sampler);
    memoryPeak = Math.max(memoryPeak, usedMemoryKb());
    const logProblems = new Map<string, number>();
    for (const run of runs) countLogProblems(run.output, logProblems);
    return { contender, runs, httpAnswers: countByOperationAndStatus(this.proxy.calls), machineMemoryPeakKb: memoryPeak - baseline, logProblems, wallMs };
  }

  /**
   * What is wrong with the cluster after a storm, one line per problem: a task that
   * did not exit 0 or never logged that it was initialised, a service or sidecar
   * not registered, a registration of no task, and for a contender that keeps its
   * login token: a task without a token in its bootstrap dir that Consul knows, and
   * login tokens of no task (orphans) or two of one task; for the anchor: any login
   * token left.
   */
  async problems(result: StormResult): Promise<string[]> {
    const out: string[] = [];
    const services = await this.consul.nodeServices(this.clusterNode);
    const ids = new Map<string, number>();
    for (const s of services) ids.set(s.ID, (ids.get(s.ID) ?? 0) + 1);
    const expected = new Set<string>();
    for (const run of result.runs) {
      const id = `${STORM_SERVICE}-${run.taskId}`;
      expected.add(id).add(`${id}-sidecar-proxy`);
      if (run.exitCode !== 0) out.push(`task ${run.taskId}: mesh-init exited with ${String(run.exitCode)}: ${lastLines(run.output, 3)}`);
      else if (Number.isNaN(run.initMs)) out.push(`task ${run.taskId}: mesh-init exited 0 without logging "${INITIALISED}"`);
      for (const want of [id, `${id}-sidecar-proxy`]) if (!ids.has(want)) out.push(`task ${run.taskId}: ${want} is not registered`);
      if (!existsSync(join(run.bootstrapDir, 'consul-dataplane.json'))) out.push(`task ${run.taskId}: no consul-dataplane.json in its bootstrap dir`);
    }
    for (const [id, n] of ids) {
      if (!expected.has(id)) out.push(`${id} is registered on the cluster's node but belongs to no task of this storm`);
      if (n > 1) out.push(`${id} is registered ${n} times`);
    }
    const tokens = await this.consul.loginTokens();
    if (!result.contender.keepsLoginToken) {
      if (tokens.length) out.push(`${tokens.length} login tokens are left after mesh-init exited (it logs out)`);
      return out;
    }
    const byTask = new Map<string, AclTokenListEntry[]>();
    for (const t of tokens) {
      const task = loginTokenTaskId(t.Description) ?? '(none)';
      byTask.set(task, [...(byTask.get(task) ?? []), t]);
    }
    const taskIds = new Set(result.runs.map((r) => r.taskId));
    for (const [task, list] of byTask) {
      if (!taskIds.has(task)) out.push(`${list.length} login tokens of no task of this storm (task-id ${task})`);
      else if (list.length > 1) out.push(`task ${task}: ${list.length} login tokens, one expected (orphans)`);
    }
    for (const run of result.runs) {
      const token = await readFile(join(run.bootstrapDir, 'service-token'), 'utf8').catch(() => '');
      if (!token.trim()) {
        out.push(`task ${run.taskId}: no service-token in its bootstrap dir`);
        continue;
      }
      const client = this.consul.servers[0]!.client({ retryDeadlineMs: 5000 });
      const self = await client.call<AclToken>({ path: '/v1/acl/token/self', token: token.trim() }).catch((err: unknown) => err as Error);
      await client.close();
      if (self instanceof Error) out.push(`task ${run.taskId}: its service-token is not a token Consul knows: ${self.message}`);
      else if (loginTokenTaskId(self.Description) !== run.taskId) out.push(`task ${run.taskId}: its service-token carries another task's id`);
    }
    return out;
  }

  /**
   * Back to the state before a storm: every service on the cluster's node
   * deregistered, every login token deleted, the bootstrap dirs removed. Throws
   * when something is left.
   */
  async cleanup(): Promise<void> {
    for (const s of await this.consul.nodeServices(this.clusterNode)) {
      await this.consul.api('PUT', '/v1/catalog/deregister', { Node: this.clusterNode, ServiceID: s.ID });
    }
    for (const t of await this.consul.loginTokens()) await this.consul.api('DELETE', `/v1/acl/token/${t.AccessorID}`);
    await Promise.all(this.#taskDirs.map((d) => rm(d, { recursive: true, force: true })));
    this.#taskDirs = [];
    const services = await this.consul.nodeServices(this.clusterNode);
    const tokens = await this.consul.loginTokens();
    if (services.length || tokens.length) throw new Error(`cleanup left ${services.length} services and ${tokens.length} login tokens in Consul`);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.sims.map((s) => s.stop()));
    await this.proxy.close();
    await this.grpc.stop();
    await Promise.all([this.consul.dispose(), this.moto.dispose()]);
    await Promise.all(this.#taskDirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** The task id in a login token's description (`token created via login: {"consul.hashicorp.com/task-id":…}`). */
function loginTokenTaskId(description: string | undefined): string | undefined {
  return /"consul\.hashicorp\.com\/task-id":"([^"]+)"/.exec(description ?? '')?.[1];
}

function lastLines(output: string, n: number): string {
  return output.trimEnd().split('\n').slice(-n).join(' | ');
}

/** The p-th percentile (0–100) by nearest rank; NaN for no values. */
export function percentile(values: number[], p: number): number {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (!s.length) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
