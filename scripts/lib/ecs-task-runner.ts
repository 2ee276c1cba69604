// An ECS task definition run with podman as the ECS agent runs it, for tests of
// the images in the task definitions terraform-aws-consul-ecs renders
// (test/fixtures/terraform-mesh-task):
//   - the task's network namespace (task-network.ts): every container joins it
//     (`--network ns:/run/netns/<name>`), as containers of an awsvpc task share one;
//   - the ECS agent at 169.254.170.2 in that namespace (EcsAgentEndpoint, the
//     project's EcsAgentSimulator behind it), with the task role's credentials
//     assumed in moto, kept in step with each container's status and health;
//   - the task's volumes as named podman volumes, which podman fills, on first
//     mount, from the image's content at the mount path (owner and mode too), as
//     ECS fills a task volume from the first image that has the path as a VOLUME;
//   - the containers started in `dependsOn` order (START, COMPLETE, SUCCESS,
//     HEALTHY), with their `user`, `entryPoint`, `command`, `environment`,
//     `mountPoints`, `ulimits`, `linuxParameters.capabilities` and
//     `initProcessEnabled`; their `healthCheck`s run at their interval with
//     `podman exec`, ECS's retries and start period applied;
//   - an essential container's exit stops the task; the task's stop is ECS's:
//     SIGTERM to every running container at once, SIGKILL to those still running
//     after their `stopTimeout` (30 s by default); then the containers and
//     volumes are removed.
// Images are never pulled: they must be in the project's podman storage
// (podman.ts). Needs root, podman and runc.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Options, type Result } from 'execa';
import type { ContainerHealthStatus } from '@consul-ecs-ts/core';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { agentContainerEnv, EcsAgentEndpoint, GaveUp, MESH_APP, until, type MeshStack } from './mesh-task-runner.ts';
import { imageExists, missingContainerTools, podmanEnvironment } from './podman.ts';
import type { TaskNamespace } from './task-network.ts';

let podmanConfig: Record<string, string> | undefined;

/**
 * podman with the project's configuration (podman.ts), written once in this
 * process: podman.ts's podman() rewrites the files on every call, which a podman
 * started at the same moment (a health check, a kill) can read half-written.
 */
async function podman(args: readonly string[], opts: Options = {}): Promise<Result> {
  podmanConfig ??= podmanEnvironment();
  return (await execa('podman', args, { ...opts, env: { ...process.env, ...podmanConfig, ...(opts.env ?? {}) } })) as Result;
}

/** A container definition: the fields of ECS's that this runner honours. */
export interface ContainerDefinition {
  name: string;
  image: string;
  /** Default true, as in ECS. */
  essential?: boolean;
  user?: string;
  entryPoint?: string[] | null;
  command?: string[];
  environment?: Array<{ name: string; value: string }>;
  mountPoints?: Array<{ sourceVolume: string; containerPath: string; readOnly?: boolean }>;
  dependsOn?: Array<{ containerName: string; condition: DependencyCondition }>;
  healthCheck?: HealthCheckDefinition;
  linuxParameters?: { initProcessEnabled?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
  ulimits?: Array<{ name: string; softLimit: number; hardLimit: number }>;
  /** Seconds between SIGTERM and SIGKILL at the task's stop. */
  stopTimeout?: number;
  /** Secrets from Secrets Manager or SSM: refused when not empty (this runner has neither). */
  secrets?: Array<{ name: string; valueFrom: string }>;
  [field: string]: unknown;
}

export type DependencyCondition = 'START' | 'COMPLETE' | 'SUCCESS' | 'HEALTHY';

/**
 * A container health check. `command` is `["CMD", …]`, `["CMD-SHELL", "…"]`,
 * or (as terraform-aws-consul-ecs renders its dataplane's) the command itself.
 */
export interface HealthCheckDefinition {
  command: string[];
  /** Seconds; default 30. */
  interval?: number;
  /** Seconds; default 5. */
  timeout?: number;
  /** Default 3. */
  retries?: number;
  /** Seconds during which failures do not count; default 0. */
  startPeriod?: number;
}

/** A task definition, as ECS's DescribeTaskDefinition returns it. */
export interface TaskDefinition {
  family: string;
  networkMode?: string;
  requiresCompatibilities?: string[];
  taskRoleArn?: string;
  volumes?: Array<{ name: string }>;
  containerDefinitions: ContainerDefinition[];
  [field: string]: unknown;
}

const PLACEHOLDER = /\$\{([a-z0-9_]+)\}/g;

/**
 * `template` with its `${name}` placeholders filled from `values`: a string that
 * is one placeholder takes the value as it is (a number stays a number), a string
 * holding placeholders takes their text. A placeholder without a value is an error.
 */
export function fillPlaceholders<T>(template: T, values: Record<string, unknown>, where = '$'): T {
  if (typeof template === 'string') {
    const whole = /^\$\{([a-z0-9_]+)\}$/.exec(template);
    const missing = [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!).filter((name) => !(name in values));
    if (missing.length) throw new Error(`${where}: no value for the placeholder ${missing.map((m) => `\${${m}}`).join(', ')}; pass it in values`);
    if (whole) return values[whole[1]!] as T;
    return template.replace(PLACEHOLDER, (_, name: string) => String(values[name])) as T;
  }
  if (Array.isArray(template)) return template.map((v, i) => fillPlaceholders(v, values, `${where}[${i}]`)) as T;
  if (template && typeof template === 'object') {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, fillPlaceholders(v, values, `${where}.${k}`)])) as T;
  }
  return template;
}

/** A JSON file with placeholders (see {@link fillPlaceholders}), filled. */
export function loadTemplate<T = unknown>(file: string, values: Record<string, unknown>): T {
  return fillPlaceholders(JSON.parse(readFileSync(file, 'utf8')) as T, values, basename(file));
}

/** The mesh app's image: test/fixtures/terraform-mesh-task/app.Dockerfile, named after what it is built from. */
const APP_DOCKERFILE = fileURLToPath(new URL('../../test/fixtures/terraform-mesh-task/app.Dockerfile', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Builds the mesh app's image (scripts/lib/mesh-app.mjs and the pinned Node.js
 * LTS of scripts/runtime.sh on Debian bookworm) unless it is in podman's storage
 * already; returns its name. The tag is a digest of what it is built from.
 */
export async function meshAppImage(base = 'docker.io/library/debian:bookworm-slim'): Promise<string> {
  const node = (await execa('bash', [join(REPO_ROOT, 'scripts/runtime.sh')])).stdout.trim();
  const digest = createHash('sha256').update(readFileSync(APP_DOCKERFILE)).update(readFileSync(MESH_APP)).update(node).update(base).digest('hex').slice(0, 12);
  const name = `localhost/consul-ecs-ts/mesh-app:${digest}`;
  if (await imageExists(name)) return name;
  if (!(await imageExists(base))) throw new Error(`the mesh app's image is built on ${base}, which is not in podman's storage: run \`npm run images\` first`);
  const built = await podman(
    [
      'build',
      '--pull=never',
      '--file',
      APP_DOCKERFILE,
      '--build-arg',
      `BASE_IMAGE=${base}`,
      '--build-context',
      `node=${dirname(node)}`,
      '--build-context',
      `app=${dirname(MESH_APP)}`,
      '--tag',
      name,
      dirname(APP_DOCKERFILE),
    ],
    { reject: false, all: true },
  );
  if (built.exitCode !== 0) throw new Error(`building ${name} from ${APP_DOCKERFILE} failed:\n${String(built.all).slice(-3000)}`);
  return name;
}

/** A container of a running task: its state as the ECS agent reports it. */
export class TaskContainer {
  /** `PULLED` (waiting for its dependencies), `CREATED`, `RUNNING`, `STOPPED`. */
  knownStatus: 'PULLED' | 'CREATED' | 'RUNNING' | 'STOPPED' = 'PULLED';
  health: ContainerHealthStatus | undefined;
  exitCode: number | undefined;
  startedAt: number | undefined;
  exitedAt: number | undefined;
  /** Health check runs so far, failed ones, and the output of the last. */
  readonly checks = { runs: 0, failures: 0, lastOutput: '' };
  /** What it printed, kept when the container is removed. */
  logs = '';
  exited: Promise<void> | undefined;

  constructor(
    readonly definition: ContainerDefinition,
    /** The podman container's name. */
    readonly podmanName: string,
  ) {
    this.health = definition.healthCheck ? 'UNKNOWN' : undefined;
  }

  get name(): string {
    return this.definition.name;
  }
  get essential(): boolean {
    return this.definition.essential ?? true;
  }
  get running(): boolean {
    return this.knownStatus === 'RUNNING';
  }
}

export interface EcsTaskOptions {
  stack: MeshStack;
  namespace: TaskNamespace;
  /** With its placeholders filled. */
  taskDefinition: TaskDefinition;
  /** ECS cluster name. Default 'mesh'. */
  cluster?: string;
  /** How long the task may take to start every container (and have those with health checks healthy). Default 120 s. */
  startTimeoutMs?: number;
  /** The stop timeout of containers whose definition has none. Default 30 s, ECS's. */
  defaultStopTimeoutMs?: number;
  onProgress?: (message: string) => void;
}

/** How the task's stop went. */
export interface TaskStopReport {
  /** When every running container got SIGTERM. */
  sigtermAt: number;
  /** The exit code of each container running at the SIGTERM, and when it exited (ms after the SIGTERM). */
  exits: Record<string, { code: number | undefined; afterMs: number }>;
  /** Containers still running at their stop timeout, which got SIGKILL. */
  killed: string[];
}

/** Live tasks, for the exit handler's last-resort cleanup. */
const live = new Set<EcsTask>();
let exitHandlerInstalled = false;

/** One ECS task of a task definition, its containers run with podman in a task network namespace. */
export class EcsTask {
  readonly containers = new Map<string, TaskContainer>();
  readonly sim: EcsAgentSimulator;
  /** Why the task stopped (ECS's stoppedReason), once it has. */
  stoppedReason: string | undefined;
  readonly #label = `consul-ecs-ts.ecs-task=${randomBytes(6).toString('hex')}`;
  readonly #volumes = new Map<string, string>();
  #endpoint: EcsAgentEndpoint | undefined;
  #stopping: Promise<TaskStopReport> | undefined;
  #disposed = false;

  private constructor(
    readonly opts: EcsTaskOptions,
    /** Holds the ECS agent endpoint's socket. */
    readonly dir: string,
    sim: EcsAgentSimulator,
    /** The agent's authorization token, and the task role's credentials as the simulator hands them out. */
    private readonly secretValues: string[],
  ) {
    this.sim = sim;
    const prefix = `ecs-${this.#label.slice(-12)}`;
    for (const def of opts.taskDefinition.containerDefinitions) this.containers.set(def.name, new TaskContainer(def, `${prefix}-${def.name}`));
    for (const v of opts.taskDefinition.volumes ?? []) this.#volumes.set(v.name, `${prefix}-${v.name}`);
  }

  get family(): string {
    return this.opts.taskDefinition.family;
  }
  get taskId(): string {
    return this.sim.taskId;
  }
  /** The cluster's node in Consul, where the task's services are registered. */
  get node(): string {
    return this.sim.clusterArn;
  }
  /** The label on every container and volume of the task. */
  get label(): string {
    return this.#label;
  }
  /** The podman volume of a task-definition volume. */
  volume(name: string): string {
    const v = this.#volumes.get(name);
    if (!v) throw new Error(`the task definition ${this.family} has no volume ${name}; it has ${[...this.#volumes.keys()].join(', ') || 'none'}`);
    return v;
  }

  container(name: string): TaskContainer {
    const c = this.containers.get(name);
    if (!c) throw new Error(`the task definition ${this.family} has no container ${name}; it has ${[...this.containers.keys()].join(', ')}`);
    return c;
  }

  /**
   * Starts a task of `opts.taskDefinition` as ECS would; resolves once every
   * container has started and those with a health check are healthy. On
   * failure everything is removed, and the error says what each container did.
   */
  static async start(opts: EcsTaskOptions): Promise<EcsTask> {
    const def = opts.taskDefinition;
    refuseUnsupported(def);
    const images = [...new Set(def.containerDefinitions.map((c) => c.image))];
    for (const image of images) {
      if (!(await imageExists(image))) throw new Error(`${def.family}: the image ${image} is not in podman's storage: run \`npm run images\` first`);
    }
    const { stack, namespace } = opts;
    const dir = await mkdtemp(join(stack.dir, `${def.family}-task-`));
    await chmod(dir, 0o755);
    const secrets: string[] = [];
    const credentials = def.taskRoleArn
      ? assumeRoleCredentials({ stsEndpoint: stack.moto.url, credentials: stack.moto.admin.credentials, roleArn: def.taskRoleArn })
      : undefined;
    const sim = new EcsAgentSimulator({
      family: def.family,
      cluster: opts.cluster ?? 'mesh',
      launchType: def.requiresCompatibilities?.length === 1 ? def.requiresCompatibilities[0]! : 'FARGATE',
      networkMode: def.networkMode ?? 'awsvpc',
      ...(credentials
        ? {
            credentials: async () => {
              const doc = await credentials();
              secrets.push(doc.SecretAccessKey, ...(doc.Token ? [doc.Token] : []));
              return doc;
            },
          }
        : {}),
      containers: def.containerDefinitions.map((c) => ({
        name: c.name,
        hasHealthCheck: c.healthCheck !== undefined,
        health: c.healthCheck ? 'UNKNOWN' : undefined,
        knownStatus: 'PULLED',
        ipv4: namespace.address,
      })),
    });
    secrets.push(sim.authorizationToken);
    const task = new EcsTask(opts, dir, sim, secrets);
    live.add(task);
    installExitHandler();
    try {
      await sim.start();
      task.#endpoint = await EcsAgentEndpoint.start(namespace, sim, dir);
      await stack.registerClusterNode(sim.clusterArn);
      for (const [name, volume] of task.#volumes) {
        await podman(['volume', 'create', '--label', task.#label, volume]);
        task.#progress(`volume ${name} created (${volume})`);
      }
      await task.#run(opts.startTimeoutMs ?? 120_000);
      return task;
    } catch (err) {
      const detail = await task.describe().catch(() => '');
      await task.dispose();
      throw new Error(`${String(err instanceof Error ? err.message : err)}\n${detail}`, { cause: err });
    }
  }

  #progress(message: string): void {
    this.opts.onProgress?.(`[${this.family}] ${message}`);
  }

  /** Starts each container once its dependencies' conditions hold, until all have started; then waits for health. */
  async #run(timeoutMs: number): Promise<void> {
    const waiting = new Set(this.containers.values());
    const deadline = Date.now() + timeoutMs;
    while (waiting.size) {
      if (this.stoppedReason) throw new Error(`${this.family}: the task stopped while starting: ${this.stoppedReason}`);
      for (const c of [...waiting]) {
        const blocked = this.#dependencyState(c);
        if (blocked === 'met') {
          waiting.delete(c);
          await this.#startContainer(c);
        } else if (blocked !== 'waiting') {
          throw new Error(`${this.family}: ${c.name} can never start: ${blocked}`);
        }
      }
      if (!waiting.size) break;
      if (Date.now() > deadline) {
        throw new Error(
          `${this.family}: not started within ${timeoutMs} ms; waiting: ${[...waiting]
            .map((c) => `${c.name} (on ${(c.definition.dependsOn ?? []).map((d) => `${d.containerName} ${d.condition}`).join(', ')})`)
            .join('; ')}`,
        );
      }
      await sleep(100);
    }
    await until(`${this.family}: every container with a health check healthy`, Math.max(1000, deadline - Date.now()), async () => {
      if (this.stoppedReason) throw new GaveUp(`the task stopped: ${this.stoppedReason}`);
      const pending = [...this.containers.values()].filter((c) => c.definition.healthCheck && c.health !== 'HEALTHY');
      const dead = pending.find((c) => c.health === 'UNHEALTHY' || c.knownStatus === 'STOPPED');
      if (dead) throw new GaveUp(`${dead.name} is ${dead.knownStatus === 'STOPPED' ? `stopped (exit ${dead.exitCode})` : 'UNHEALTHY'}`);
      return pending.length === 0 ? true : undefined;
    });
    this.#progress('every container started, those with health checks healthy');
  }

  /** 'met', 'waiting', or why the dependencies of `c` can never be met. */
  #dependencyState(c: TaskContainer): 'met' | 'waiting' | string {
    for (const dep of c.definition.dependsOn ?? []) {
      const d = this.container(dep.containerName);
      const exited = d.knownStatus === 'STOPPED';
      switch (dep.condition) {
        case 'START':
          if (d.knownStatus === 'PULLED' || d.knownStatus === 'CREATED') return 'waiting';
          break;
        case 'COMPLETE':
          if (!exited) return 'waiting';
          break;
        case 'SUCCESS':
          if (!exited) return 'waiting';
          if (d.exitCode !== 0) return `${d.name} exited ${d.exitCode}, not 0 (SUCCESS)`;
          break;
        case 'HEALTHY':
          if (exited) return `${d.name} exited (${d.exitCode}) before it was HEALTHY`;
          if (d.health === 'UNHEALTHY') return `${d.name} is UNHEALTHY`;
          if (d.health !== 'HEALTHY') return 'waiting';
          break;
        default:
          throw new Error(
            `${this.family}: ${c.name} depends on ${d.name} with condition ${String(dep.condition)}: expected START, COMPLETE, SUCCESS or HEALTHY`,
          );
      }
    }
    return 'met';
  }

  /** The environment of a container: the ECS agent's variables, then the definition's. */
  #environment(def: ContainerDefinition): Record<string, string> {
    return { ...agentContainerEnv(this.sim), ...Object.fromEntries((def.environment ?? []).map((e) => [e.name, e.value])) };
  }

  async #startContainer(c: TaskContainer): Promise<void> {
    const def = c.definition;
    const env = this.#environment(def);
    const args = ['create', '--name', c.podmanName, '--label', this.#label, '--pull=never', '--log-driver', 'k8s-file'];
    args.push('--network', `ns:/run/netns/${this.opts.namespace.name}`);
    if (def.user) args.push('--user', def.user);
    if (def.entryPoint) args.push('--entrypoint', JSON.stringify(def.entryPoint));
    if (def.linuxParameters?.initProcessEnabled) args.push('--init');
    for (const cap of def.linuxParameters?.capabilities?.add ?? []) args.push('--cap-add', cap);
    for (const cap of def.linuxParameters?.capabilities?.drop ?? []) args.push('--cap-drop', cap);
    if (def.ulimits?.length) {
      // A container cannot have more than this machine allows (EC2 and Fargate allow 2^20 open files):
      // the definition's ulimits are capped at podman's configured ones, which it would drop otherwise.
      const limits = configuredUlimits();
      for (const u of def.ulimits) {
        const allowed = limits.get(u.name);
        const [soft, hard] = allowed ? [Math.min(u.softLimit, allowed.hard), Math.min(u.hardLimit, allowed.hard)] : [u.softLimit, u.hardLimit];
        if (hard < u.hardLimit) this.#progress(`${c.name}: ulimit ${u.name} ${u.softLimit}:${u.hardLimit} capped at this machine's ${hard}`);
        limits.set(u.name, { soft, hard });
      }
      for (const [name, l] of limits) args.push('--ulimit', `${name}=${l.soft}:${l.hard}`);
    }
    // Values through podman's environment, not its command line: they hold the agent's authorization token.
    for (const name of Object.keys(env)) args.push('--env', name);
    for (const m of def.mountPoints ?? []) args.push('--volume', `${this.volume(m.sourceVolume)}:${m.containerPath}${m.readOnly ? ':ro' : ''}`);
    args.push(def.image, ...(def.command ?? []));
    await podman(args, { env });
    c.knownStatus = 'CREATED';
    this.sim.setStatus(c.name, 'RUNNING', 'CREATED');
    const started = await podman(['start', c.podmanName], { reject: false, all: true });
    if (started.exitCode !== 0) {
      c.knownStatus = 'STOPPED';
      c.exitCode = undefined;
      this.sim.stopContainer(c.name);
      throw new Error(`${this.family}: podman could not start ${c.name}: ${String(started.all)}`);
    }
    c.startedAt = Date.now();
    c.knownStatus = 'RUNNING';
    this.sim.setStatus(c.name, 'RUNNING', 'RUNNING');
    this.#progress(`${c.name} started (${def.image}${def.user ? `, user ${def.user}` : ''})`);
    c.exited = this.#watchExit(c);
    if (def.healthCheck) void this.#healthChecks(c, def.healthCheck);
  }

  /** Waits for the container's exit; reports it STOPPED with its exit code; an essential container's exit stops the task. */
  async #watchExit(c: TaskContainer): Promise<void> {
    const waited = await podman(['wait', c.podmanName], { reject: false });
    const code = Number(String(waited.stdout).trim());
    c.exitCode = waited.exitCode === 0 && Number.isInteger(code) ? code : undefined;
    c.exitedAt = Date.now();
    c.knownStatus = 'STOPPED';
    this.sim.stopContainer(c.name);
    c.logs = await this.#readLogs(c);
    this.#progress(`${c.name} exited (${c.exitCode ?? 'unknown code'})`);
    if (c.essential && !this.#stopping && !this.#disposed) {
      this.stoppedReason = `Essential container in task exited: ${c.name} (${c.exitCode ?? 'unknown code'})`;
      this.#progress(`${this.stoppedReason}: stopping the task`);
      void this.stop().catch(() => {});
    }
  }

  /** The container's health check, as ECS runs it: every interval, after the interval, while the container runs. */
  async #healthChecks(c: TaskContainer, hc: HealthCheckDefinition): Promise<void> {
    const intervalMs = (hc.interval ?? 30) * 1000;
    const timeoutMs = (hc.timeout ?? 5) * 1000;
    const retries = hc.retries ?? 3;
    const startPeriodEnds = c.startedAt! + (hc.startPeriod ?? 0) * 1000;
    const [kind, ...rest] = hc.command;
    const argv = kind === 'CMD' ? rest : kind === 'CMD-SHELL' ? ['/bin/sh', '-c', rest.join(' ')] : hc.command;
    let consecutiveFailures = 0;
    for (;;) {
      await sleep(intervalMs);
      if (!c.running || this.#disposed) return;
      const r = await podman(['exec', c.podmanName, ...argv], { reject: false, all: true, timeout: timeoutMs });
      if (!c.running || this.#disposed) return;
      c.checks.runs++;
      c.checks.lastOutput = String(r.all ?? '').slice(-500);
      if (r.exitCode === 0) {
        consecutiveFailures = 0;
        if (c.health !== 'HEALTHY') this.#progress(`${c.name} is HEALTHY`);
        this.#setHealth(c, 'HEALTHY');
        continue;
      }
      c.checks.failures++;
      // Failures in the start period do not count, unless the container was healthy already.
      if (Date.now() < startPeriodEnds && c.health !== 'HEALTHY') continue;
      if (++consecutiveFailures >= retries) {
        if (c.health !== 'UNHEALTHY') this.#progress(`${c.name} is UNHEALTHY: ${c.checks.lastOutput || `exit ${r.exitCode}`}`);
        this.#setHealth(c, 'UNHEALTHY');
      }
    }
  }

  #setHealth(c: TaskContainer, status: ContainerHealthStatus): void {
    c.health = status;
    this.sim.setHealth(c.name, status);
  }

  async #readLogs(c: TaskContainer): Promise<string> {
    const r = await podman(['logs', c.podmanName], { reject: false, all: true });
    return r.exitCode === 0 ? String(r.all ?? '') : c.logs;
  }

  /** What a container printed so far (or before it was removed). */
  async logs(name: string): Promise<string> {
    const c = this.container(name);
    if (c.knownStatus === 'PULLED') return '';
    c.logs = await this.#readLogs(c);
    return c.logs;
  }

  /** Runs a command in a running container, as its user (`podman exec`). */
  async exec(name: string, argv: string[], timeoutMs = 15_000): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
    const c = this.container(name);
    if (!c.running) throw new Error(`${this.family}: cannot run ${argv[0]} in ${name}: it is ${c.knownStatus}`);
    const r = await podman(['exec', c.podmanName, ...argv], { reject: false, timeout: timeoutMs });
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /** A file of a task volume, read from the host. */
  async readVolumeFile(volume: string, path: string): Promise<string> {
    const mountpoint = String((await podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', this.volume(volume)])).stdout).trim();
    return readFileSync(join(mountpoint, path), 'utf8');
  }

  /** Owner, group and mode of a file of a task volume (its root by default), as the containers see it. */
  async volumeFileStat(volume: string, path = '.'): Promise<{ uid: number; gid: number; mode: string }> {
    const mountpoint = String((await podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', this.volume(volume)])).stdout).trim();
    const out = (await execa('stat', ['-c', '%u %g %a', join(mountpoint, path)])).stdout.trim().split(' ');
    return { uid: Number(out[0]), gid: Number(out[1]), mode: out[2]! };
  }

  /**
   * Runs a one-off container beside the task's: in its network namespace, with
   * task volumes mounted read-only (`{ volume: containerPath }`); removed after.
   */
  async runBeside(
    image: string,
    argv: string[],
    mounts: Record<string, string>,
    timeoutMs = 30_000,
  ): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
    const args = ['run', '--rm', '--pull=never', '--label', this.#label, '--network', `ns:/run/netns/${this.opts.namespace.name}`];
    for (const [volume, path] of Object.entries(mounts)) args.push('--volume', `${this.volume(volume)}:${path}:ro`);
    const r = await podman([...args, image, ...argv], { reject: false, timeout: timeoutMs });
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /**
   * Stops the task as ECS does: every container's desired status STOPPED,
   * SIGTERM to every running container at once, SIGKILL to those still running
   * after their stop timeout; resolves once all have exited, then removes the
   * containers and volumes. Calling it again returns the same stop.
   */
  stop(): Promise<TaskStopReport> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<TaskStopReport> {
    this.stoppedReason ??= 'Task stopped by user';
    const sigtermAt = Date.now();
    const report: TaskStopReport = { sigtermAt, exits: {}, killed: [] };
    this.#progress('stopping the task: SIGTERM to every running container');
    for (const c of this.containers.values()) {
      if (c.knownStatus === 'PULLED' || c.knownStatus === 'CREATED') {
        // Never started: ECS never will.
        c.knownStatus = 'STOPPED';
        this.sim.stopContainer(c.name);
      } else if (c.running) this.sim.setStatus(c.name, 'STOPPED', 'RUNNING');
    }
    const running = [...this.containers.values()].filter((c) => c.running);
    await Promise.all(running.map((c) => podman(['kill', '--signal', 'TERM', c.podmanName], { reject: false })));
    const timers = running.map((c) =>
      setTimeout(
        () => {
          if (!c.running) return;
          report.killed.push(c.name);
          this.#progress(`${c.name} still running at its stop timeout: SIGKILL`);
          void podman(['kill', '--signal', 'KILL', c.podmanName], { reject: false });
        },
        c.definition.stopTimeout !== undefined ? c.definition.stopTimeout * 1000 : (this.opts.defaultStopTimeoutMs ?? 30_000),
      ),
    );
    await Promise.all(running.map((c) => c.exited));
    for (const t of timers) clearTimeout(t);
    for (const c of running) report.exits[c.name] = { code: c.exitCode, afterMs: c.exitedAt! - sigtermAt };
    await this.#removeContainersAndVolumes();
    this.#progress('the task has stopped; its containers and volumes are removed');
    return report;
  }

  async #removeContainersAndVolumes(): Promise<void> {
    for (const c of this.containers.values()) {
      if (c.knownStatus !== 'PULLED') c.logs = await this.#readLogs(c);
    }
    await podman(['rm', '--force', '--time', '0', '--volumes', ...[...this.containers.values()].map((c) => c.podmanName)], { reject: false });
    await podman(['volume', 'rm', '--force', ...this.#volumes.values()], { reject: false });
  }

  /** Secrets this task handled: the agent's authorization token and the task role's credentials. */
  secrets(): string[] {
    return [...this.secretValues];
  }

  /** Each container's state, health and the end of its output, for a failure message. */
  async describe(): Promise<string> {
    const parts: string[] = [];
    for (const c of this.containers.values()) {
      const logs = c.knownStatus === 'RUNNING' ? await this.logs(c.name).catch(() => c.logs) : c.logs;
      const state = `${c.knownStatus}${c.exitCode !== undefined ? ` exit ${c.exitCode}` : ''}${c.health ? `, ${c.health}` : ''}`;
      const checks = c.definition.healthCheck ? `; health checks ${c.checks.runs} run, ${c.checks.failures} failed, last: ${c.checks.lastOutput.trim()}` : '';
      parts.push(`--- ${this.family}/${c.name} (${state}${checks}):\n${tail(logs)}`);
    }
    return parts.join('\n');
  }

  /**
   * Removes whatever is left of the task, stopped or not: its containers and
   * volumes, the agent endpoint and simulator, its files; and what a task killed
   * without a graceful stop leaves in Consul (as the controller's task reaper
   * would: its service instances and login tokens).
   */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    live.delete(this);
    await this.#removeContainersAndVolumes();
    await Promise.all([...this.containers.values()].map((c) => c.exited?.catch(() => {})));
    await this.#endpoint?.close();
    const { stack } = this.opts;
    const services = await stack.consul.nodeServices(this.node).catch(() => []);
    for (const s of services.filter((s) => s.Meta?.['task-id'] === this.taskId)) {
      await stack.consul.api('PUT', '/v1/catalog/deregister', { Node: this.node, ServiceID: s.ID }).catch(() => {});
    }
    for (const t of await stack.taskTokens(this.taskId).catch(() => [])) {
      await stack.consul.api('DELETE', `/v1/acl/token/${t.AccessorID}`).catch(() => {});
    }
    await this.sim.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Removes the task's containers and volumes without waiting, for the process's exit. */
  disposeSync(): void {
    live.delete(this);
    const env = { ...process.env, ...podmanEnvironment() };
    for (const kind of [
      ['rm', '--force', '--time', '0'],
      ['volume', 'rm', '--force'],
    ]) {
      try {
        const ids = execFileSync('podman', [...(kind[0] === 'rm' ? ['ps', '-aq'] : ['volume', 'ls', '-q']), '--filter', `label=${this.#label}`], {
          env,
          encoding: 'utf8',
        })
          .split('\n')
          .filter(Boolean);
        if (ids.length) execFileSync('podman', [...kind, ...ids], { env, stdio: 'ignore' });
      } catch {
        // podman gone, or nothing left
      }
    }
  }
}

/** What of a task definition this runner cannot do, refused rather than ignored. */
function refuseUnsupported(def: TaskDefinition): void {
  if ((def.networkMode ?? 'awsvpc') !== 'awsvpc') throw new Error(`${def.family}: networkMode ${def.networkMode}: only awsvpc tasks run here`);
  const names = new Set(def.containerDefinitions.map((c) => c.name));
  for (const c of def.containerDefinitions) {
    if (c.secrets?.length)
      throw new Error(`${def.family}: ${c.name} has secrets (${c.secrets.map((s) => s.name).join(', ')}): put their values in environment instead`);
    for (const dep of c.dependsOn ?? []) {
      if (!names.has(dep.containerName)) throw new Error(`${def.family}: ${c.name} depends on ${dep.containerName}, which the task definition does not have`);
    }
    for (const m of c.mountPoints ?? []) {
      if (!(def.volumes ?? []).some((v) => v.name === m.sourceVolume)) {
        throw new Error(`${def.family}: ${c.name} mounts the volume ${m.sourceVolume}, which the task definition does not have`);
      }
    }
  }
}

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.once('exit', () => {
    for (const task of [...live]) task.disposeSync();
  });
}

/** An image with nothing in it (no files at all), made once in podman's storage; returns its name. */
export async function emptyImage(): Promise<string> {
  const name = 'localhost/consul-ecs-ts/empty:latest';
  if (await imageExists(name)) return name;
  const dir = await mkdtemp(join(tmpdir(), 'empty-image-'));
  try {
    const archive = join(dir, 'empty.tar');
    await execa('tar', ['-cf', archive, '-T', '/dev/null']);
    await podman(['import', archive, name]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return name;
}

/** Containers and volumes of this runner's tasks (any task) still in podman's storage. */
export async function leftoverContainersAndVolumes(): Promise<string[]> {
  const filter = ['--filter', 'label=consul-ecs-ts.ecs-task'];
  const containers = String((await podman(['ps', '-a', '--format', '{{.Names}}', ...filter])).stdout)
    .split('\n')
    .filter(Boolean);
  const volumes = String((await podman(['volume', 'ls', '--format', '{{.Name}}', ...filter])).stdout)
    .split('\n')
    .filter(Boolean);
  return [...containers.map((c) => `container ${c}`), ...volumes.map((v) => `volume ${v}`)];
}

/** What the runner needs and is missing: podman, runc, root. Empty when all is there. */
export function containerRuntimePrerequisites(): string[] {
  const missing = missingContainerTools().filter((m) => /^(podman|runc) /.test(m));
  if (process.getuid?.() !== 0) missing.push('root (podman runs rootful here)');
  return missing;
}

/**
 * The ulimits podman.ts configures for containers (`default_ulimits` of its
 * containers.conf): what this machine lets a container have. podman drops them
 * all when a container is given any `--ulimit`.
 */
function configuredUlimits(): Map<string, { soft: number; hard: number }> {
  podmanConfig ??= podmanEnvironment();
  const conf = readFileSync(podmanConfig.CONTAINERS_CONF!, 'utf8');
  const list = /^default_ulimits\s*=\s*\[(.*)\]/m.exec(conf)?.[1] ?? '';
  const limits = new Map<string, { soft: number; hard: number }>();
  for (const m of list.matchAll(/"(\w+)=(\d+):(\d+)"/g)) limits.set(m[1]!, { soft: Number(m[2]), hard: Number(m[3]) });
  return limits;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tail = (text: string, lines = 25) => text.trimEnd().split('\n').slice(-lines).join('\n');
