// Benchmark of a whole mesh task's start as its user sees it: from the start of the
// task's first sidecar process to the first HTTP request that crosses the mesh
// (client app → the client's upstream local bind port → the client's Envoy → mTLS →
// the server's Envoy public listener → the server app → the reply), and the memory
// of the task's sidecar processes together. Contenders for the client task:
//   ours A  `consul-ecs control-plane` (the self-contained executable) and Envoy
//           from the envoy-bootstrap.json it writes (ADS straight to Consul);
//   ours B  `consul-ecs control-plane` and consul-dataplane (the peers' release)
//           from the consul-dataplane.json it writes;
//   ours C  (--ours-mesh-init) ours in the anchor's shape: `consul-ecs mesh-init`,
//           then `health-sync` beside consul-dataplane (the peers' release);
//   anchor  hashicorp/consul-ecs v0.10.0 `mesh-init`, then `health-sync` beside
//           consul-dataplane v2.0.1 (terraform-aws-consul-ecs v0.10's default).
// Each round runs every contender once, in turn (every other round in the reverse
// order), each on a fresh client task (new task id, new bootstrap directory), then
// stops it as ECS would and checks that its service instances and login tokens are
// gone. Round 0 warms up and is not counted. The server task (ours control-plane and
// consul-dataplane, and the server app in this script) starts once and stays up.
// Prints medians, quartiles, ratios to the anchor, peak and steady RSS, and the
// versions used. Not a test.
//
// The start rule modelled (how the orchestration starts the next processes):
//  - anchor, ours C: health-sync and consul-dataplane start when mesh-init has
//    exited 0 (dependsOn mesh-init SUCCESS: the agent sees the exit at once).
//  - ours A, B: Envoy (consul-dataplane) starts as soon as the file it reads is in
//    place (mesh-init writes each by rename, so it is whole once it is there). That
//    is the earliest any orchestration can start it. A task definition that makes the
//    dataplane depend on the control-plane container being HEALTHY waits for a health
//    check as well (ECS runs one every `interval`, 5 s at least), which is not
//    modelled: no contender pays ECS's or the container runtime's own costs here.
//  - The client app (this script) sends a request every --poll ms (default 10) from
//    the task's start: an app already up and retrying, where in ECS it would start
//    once the dataplane container is HEALTHY.
//  - No envoy-entrypoint wrapper around Envoy or consul-dataplane, for any contender.
//    Envoy in ours A runs with --concurrency 2, what consul-dataplane gives the Envoy
//    it starts, so that the figures do not depend on this machine's core count.
// Ports: every task shares loopback, so each task's public listener, Envoy ready
// port and upstream bind port come from its config, and Envoy's admin port (19000 in
// a task) moves: for ours A this script rewrites the admin port of the bootstrap (and
// of the ready listener's route to it) before it starts Envoy, inside the timed span
// (its median is printed); consul-dataplane gets -envoy-admin-bind-port,
// -xds-bind-port, -graceful-port and -telemetry-prom-merge-port, flags that take
// precedence over its file.
// Memory: "peak" is the sum of each long-running sidecar process's own peak (VmHWM,
// Envoy under consul-dataplane included) read after the steady wait; with a
// mesh-init, which exits before the others start, it is the larger of that and
// mesh-init's own peak, taken from a second, untimed mesh-init run of the same task
// under GNU time (GNU time delays what it runs by a few ms). "steady" is the sum of
// their resident sizes --steady seconds after the first request.
// When it may (root), the script drops the page cache once before the warm-up round
// (a just-built executable's pages count more resident memory; see
// lib/page-cache.ts); --no-drop-caches to skip.
// --keep-logs keeps each client task's bootstrap directory and its sidecars' output.
//   node --import tsx scripts/bench-task-start.ts [--runs=N] [--steady=S] [--poll=MS] [--anchor=PATH | --no-anchor] [--ours=PATH] [--ours-mesh-init] [--no-drop-caches] [--keep-logs]
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { assumeRoleCredentials, EcsAgentSimulator, type ContainerCredentialsDocument, type CredentialsSource } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './lib/aws-admin.ts';
import { configureIamAuthMethod, freePorts, PEERS_DIR, peerBinary, startConsulAndMoto } from './lib/local-stack.ts';
import { commandLine, median, peakRssKb, ratio, requireGnuTime } from './lib/bench.ts';
import { canDropPageCache, dropPageCache } from './lib/page-cache.ts';

const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const runs = Number(arg('runs', '9'));
if (!(runs >= 1)) throw new Error('--runs must be at least 1');
const steadySeconds = Number(arg('steady', '10'));
const pollMs = Number(arg('poll', '10'));
const withAnchor = !process.argv.includes('--no-anchor');
const oursMeshInit = process.argv.includes('--ours-mesh-init');
const dropCaches = !process.argv.includes('--no-drop-caches') && canDropPageCache();
const keepLogs = process.argv.includes('--keep-logs');
// --ours=PATH: another copy of the executable (e.g. one kept aside while the tree is rebuilt).
const SEA = arg('ours', '') || fileURLToPath(new URL('../packages/cli/dist/sea/consul-ecs', import.meta.url));
const BIN = join(PEERS_DIR, 'bin');
const OUR_DATAPLANE = join(BIN, 'consul-dataplane-1.9.9');
if (!existsSync(SEA)) throw new Error(`${SEA} is missing: run npm run build`);
requireGnuTime();

/** Runs scripts/peers.sh with these arguments and returns the path it prints (a peer it built, or found built). */
async function peer(args: string[], what: string): Promise<string> {
  const r = await execa('bash', [fileURLToPath(new URL('./peers.sh', import.meta.url)), ...args], { reject: false, stderr: 'inherit' });
  if (r.exitCode !== 0) throw new Error(`cannot build ${what} (scripts/peers.sh ${args.join(' ')}, above)`);
  return r.stdout.trim().split('\n').pop()!;
}
const anchor = withAnchor ? arg('anchor', '') || (await peer(['anchor'], 'the anchor; give its binary with --anchor=PATH, or pass --no-anchor')) : '';
const ANCHOR_DATAPLANE = withAnchor ? await peer(['dataplane', '2.0.1'], 'consul-dataplane 2.0.1') : '';
if (!existsSync(OUR_DATAPLANE)) throw new Error(`${OUR_DATAPLANE} is missing: run bash scripts/peers.sh install`);

type Shape = 'control-plane+envoy' | 'control-plane+dataplane' | 'mesh-init+dataplane';
interface Contender {
  name: string;
  shape: Shape;
  /** The consul-ecs executable. */
  ecs: string;
  /** consul-dataplane, for the shapes that run it. */
  dataplane?: string;
}
const contenders: Contender[] = [
  { name: 'ours A: control-plane + Envoy', shape: 'control-plane+envoy', ecs: SEA },
  { name: 'ours B: control-plane + dataplane 1.9.9', shape: 'control-plane+dataplane', ecs: SEA, dataplane: OUR_DATAPLANE },
];
if (oursMeshInit) contenders.push({ name: 'ours C: mesh-init, health-sync + dp 1.9.9', shape: 'mesh-init+dataplane', ecs: SEA, dataplane: OUR_DATAPLANE });
const ANCHOR_NAME = 'anchor: mesh-init, health-sync + dp 2.0.1';
if (anchor) contenders.push({ name: ANCHOR_NAME, shape: 'mesh-init+dataplane', ecs: anchor, dataplane: ANCHOR_DATAPLANE });

const SERVER_ID = 'consul.bench.local';
const SERVER_REPLY = 'hello from the server app';
const DATAPLANE_CONTAINER = 'consul-dataplane';
const ENV_PATH = `${BIN}:${process.env.PATH ?? ''}`;

/** One credentials source per role, asked once: the ECS agent holds the task role's credentials before the task's containers start. */
function heldCredentials(source: CredentialsSource): CredentialsSource {
  let held: Promise<ContainerCredentialsDocument> | undefined;
  return () => (held ??= source());
}

/**
 * The client app: a GET to the upstream's local bind port every `intervalMs`,
 * whatever the earlier ones are doing (one that hangs does not hold the next back);
 * done at the first reply that is the server app's.
 */
class ClientApp {
  #timer: NodeJS.Timeout | undefined;
  #inFlight = new Set<ReturnType<typeof request>>();
  #stopped = false;

  constructor(
    readonly port: number,
    readonly intervalMs: number,
    readonly elapsed: () => number,
  ) {}

  firstReply(timeoutMs: number, procs: ResultPromise[], log: string): Promise<{ ms: number; connectMs: number; attempts: number }> {
    let connectMs = Number.NaN;
    let attempts = 0;
    return new Promise((resolve, reject) => {
      const finish = (err: Error | undefined, ms?: number) => {
        if (this.#stopped) return;
        this.stop();
        if (err) reject(err);
        else resolve({ ms: ms!, connectMs, attempts });
      };
      for (const p of procs) {
        p.once(
          'exit',
          (code, signal) =>
            void tail(log).then((t) => finish(new Error(`a sidecar process exited (${code ?? signal}) before the first request went through${t}`))),
        );
      }
      const deadline = setTimeout(() => void tail(log).then((t) => finish(new Error(`no request crossed the mesh within ${timeoutMs} ms${t}`))), timeoutMs);
      const attempt = () => {
        if (this.#stopped || this.#inFlight.size >= 50) return;
        attempts++;
        const req = request({ host: '127.0.0.1', port: this.port, path: '/', agent: false, timeout: 5000 }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => {
            this.#inFlight.delete(req);
            if (res.statusCode === 200 && body === SERVER_REPLY) {
              clearTimeout(deadline);
              finish(undefined, this.elapsed());
            }
          });
          res.on('error', () => this.#inFlight.delete(req));
        });
        req.on('socket', (s) => s.once('connect', () => Number.isNaN(connectMs) && (connectMs = this.elapsed())));
        req.on('timeout', () => req.destroy());
        req.on('error', () => this.#inFlight.delete(req));
        this.#inFlight.add(req);
        req.end();
      };
      this.#timer = setInterval(attempt, this.intervalMs);
      attempt();
    });
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const r of this.#inFlight) r.destroy();
    this.#inFlight.clear();
  }
}

const [consul, moto] = await startConsulAndMoto();
const sims: EcsAgentSimulator[] = [];
/** The server task's sidecar processes and its simulated agent, stopped at the end as ECS would. */
let serverTask: { sim: EcsAgentSimulator; controlPlane: ResultPromise; dataplane?: ResultPromise } | undefined;
let serverDir = '';
let serverApp: Server | undefined;
let exitCode: number;
try {
  await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID });
  const roles = {
    server: await moto.admin.createRole({ name: 'bench-server', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'server' } }),
    client: await moto.admin.createRole({ name: 'bench-client', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'client' } }),
  };
  const credentials = {
    server: heldCredentials(assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: roles.server.arn })),
    client: heldCredentials(assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: roles.client.arn })),
  };
  await credentials.server();
  await credentials.client();
  const newTask = async (family: 'server' | 'client') => {
    const sim = await new EcsAgentSimulator({
      family,
      credentials: credentials[family],
      containers: ['app', DATAPLANE_CONTAINER].map((name) => ({ name, hasHealthCheck: true, health: 'HEALTHY' as const })),
    }).start();
    sims.push(sim);
    return sim;
  };
  // The controller's work: the cluster's synthetic node, and the intention.
  const clusterArn = new EcsAgentSimulator({ family: 'x' }).clusterArn;
  await consul.api('PUT', '/v1/catalog/register', { Node: clusterArn, Address: '127.0.0.1', NodeMeta: { 'synthetic-node': 'true' } });
  await consul.api('PUT', '/v1/config', { Kind: 'service-intentions', Name: 'server', Sources: [{ Name: 'client', Action: 'allow' }] });

  const config = (dir: string, service: string, port: number, proxy: Record<string, unknown>) => ({
    bootstrapDir: dir,
    consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: consul.ports.http }, grpc: { port: consul.ports.grpc } },
    consulLogin: { enabled: true, stsEndpoint: moto.url, serverIdHeaderValue: SERVER_ID },
    service: { name: service, port },
    proxy,
    healthSyncContainers: ['app'],
    transparentProxy: { enabled: false },
  });
  const taskEnv = (sim: EcsAgentSimulator, cfg: unknown) => ({
    ...sim.containerEnv(),
    CONSUL_ECS_CONFIG_JSON: JSON.stringify(cfg),
    CONSUL_ECS_EXECUTABLE: SEA,
    PATH: ENV_PATH,
  });
  const spawn = (argv: string[], env: Record<string, string>, log: string) =>
    execa(argv[0]!, argv.slice(1), {
      env,
      extendEnv: false,
      reject: false,
      cleanup: true,
      stdin: 'ignore',
      stdout: { file: log, append: true },
      stderr: { file: log, append: true },
    });
  const dataplaneArgv = (binary: string, dir: string, ports: TaskPorts) => [
    binary,
    '-config-file',
    join(dir, 'consul-dataplane.json'),
    '-envoy-admin-bind-port',
    String(ports.admin),
    '-xds-bind-port',
    String(ports.xds),
    '-graceful-port',
    String(ports.graceful),
    '-telemetry-prom-merge-port',
    String(ports.merge),
  ];

  // The server task, up for every round: the server app (here), ours control-plane and consul-dataplane.
  serverDir = await mkdtemp(join(tmpdir(), 'bench-ts-server-'));
  const [serverAppPort] = await freePorts(1);
  serverApp = createServer((_req, res) => res.end(SERVER_REPLY));
  await new Promise<void>((r) => serverApp!.listen(serverAppPort, '127.0.0.1', r));
  const serverPorts = await taskPorts();
  const serverSim = await newTask('server');
  const serverEnv = taskEnv(
    serverSim,
    config(serverDir, 'server', serverAppPort!, { publicListenerPort: serverPorts.publicListener, healthCheckPort: serverPorts.ready }),
  );
  const serverLog = join(serverDir, 'sidecars.log');
  serverTask = { sim: serverSim, controlPlane: spawn([SEA, 'control-plane'], serverEnv, serverLog) };
  await until("the server task's dataplane config", 30_000, async () => existsSync(join(serverDir, 'consul-dataplane.json')) || undefined, serverLog);
  serverTask.dataplane = spawn(dataplaneArgv(OUR_DATAPLANE, serverDir, serverPorts), serverEnv, serverLog);
  await until(
    'the server instance passing in Consul',
    60_000,
    async () => {
      const entries = await consul.api<unknown[]>('GET', '/v1/health/connect/server?passing=true');
      return entries.length === 1 || undefined;
    },
    serverLog,
  );

  if (dropCaches) dropPageCache();
  const samples: Record<string, RoundResult[]> = Object.fromEntries(contenders.map((c) => [c.name, []]));
  for (let round = 0; round <= runs; round++) {
    // Every other round in the reverse order, so that no contender always follows the same one.
    for (const c of round % 2 ? contenders : [...contenders].reverse()) {
      const r = await runTask(c);
      process.stderr.write(
        `round ${round}${round === 0 ? ' (warm-up)' : ''} ${c.name}: first request ${r.firstMs.toFixed(0)} ms, init ${r.initMs.toFixed(0)} ms, steady ${r.steadyMb.toFixed(1)} MB, peak ${r.peakMb.toFixed(1)} MB${r.clean ? '' : `, NOT CLEAN: ${r.leftovers}`}\n`,
      );
      if (round > 0) samples[c.name]!.push(r);
    }
  }
  exitCode = report(samples);

  /** Starts one client task for this contender, waits for its first request, its steady state, then stops it as ECS would. */
  async function runTask(c: Contender): Promise<RoundResult> {
    const dir = await mkdtemp(join(tmpdir(), 'bench-ts-client-'));
    const log = join(dir, 'sidecars.log');
    const ports = await taskPorts();
    const sim = await newTask('client');
    const [appPort] = await freePorts(1);
    const env = taskEnv(
      sim,
      config(dir, 'client', appPort!, {
        publicListenerPort: ports.publicListener,
        healthCheckPort: ports.ready,
        upstreams: [{ destinationName: 'server', localBindPort: ports.upstream }],
      }),
    );
    const procs: Array<{ role: string; proc: ResultPromise }> = [];
    let proxy: ResultPromise | undefined;
    let initMs: number;
    let proxyStartMs: number;
    let rewriteMs = Number.NaN;
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
    const client = new ClientApp(ports.upstream, pollMs, elapsed);
    try {
      if (c.shape === 'mesh-init+dataplane') {
        const init = spawn([c.ecs, 'mesh-init'], env, log);
        const code = await new Promise<number | null>((r) => init.once('exit', (code) => r(code)));
        initMs = elapsed();
        if (code !== 0) throw new Error(`${c.name}: mesh-init exited with ${code}${await tail(log)}`);
        // Both start at once; the one on the way to the first request first.
        proxy = spawn(dataplaneArgv(c.dataplane!, dir, ports), env, log);
        proxyStartMs = elapsed();
        procs.push({ role: 'health-sync', proc: spawn([c.ecs, 'health-sync'], env, log) });
      } else {
        procs.push({ role: 'control-plane', proc: spawn([c.ecs, 'control-plane'], env, log) });
        const file = join(dir, c.shape === 'control-plane+envoy' ? 'envoy-bootstrap.json' : 'consul-dataplane.json');
        await fileInPlace(file, procs[0]!.proc, log);
        initMs = elapsed();
        if (c.shape === 'control-plane+envoy') {
          const local = moveEnvoyAdmin(file, ports.admin);
          rewriteMs = elapsed() - initMs;
          proxy = spawn([peerBinary('envoy'), '-c', local, '--disable-hot-restart', '--concurrency', '2'], env, log);
        } else {
          proxy = spawn(dataplaneArgv(c.dataplane!, dir, ports), env, log);
        }
        proxyStartMs = elapsed();
      }
      procs.push({ role: c.shape === 'control-plane+envoy' ? 'envoy' : 'consul-dataplane', proc: proxy });
      const first = await client.firstReply(60_000, [...procs.map((p) => p.proc)], log);
      await sleep(steadySeconds * 1000);
      const mem = memoryOf(procs);
      // What the stop must remove: the task's instances and its tokens (found by the task id in their description).
      const services = (await consul.nodeServices(clusterArn)).filter((s) => s.ID.includes(sim.taskId)).length;
      const tokens = (await tokensOf(sim.taskId)).length;
      if (services !== 2 || tokens === 0)
        throw new Error(`${c.name}: the running task has ${services} service instances and ${tokens} login tokens in Consul; expected 2 and at least 1`);
      const stopMs = await stopTask(sim, procs, proxy, log);
      const leftovers = await leftoversOf(sim.taskId);
      let meshInitPeakMb = Number.NaN;
      if (c.shape === 'mesh-init+dataplane') meshInitPeakMb = await meshInitPeak(c, sim, env);
      return {
        firstMs: first.ms,
        connectMs: first.connectMs,
        initMs,
        proxyStartMs,
        rewriteMs,
        attempts: first.attempts,
        steadyMb: mem.rssMb,
        peakMb: Math.max(mem.hwmMb, Number.isNaN(meshInitPeakMb) ? 0 : meshInitPeakMb),
        meshInitPeakMb,
        byRole: mem.byRole,
        stopMs,
        tokens,
        clean: leftovers.length === 0,
        leftovers: leftovers.join(', '),
      };
    } finally {
      client.stop();
      for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.proc));
      await removeTaskLeftovers(sim.taskId);
      await sim.stop();
      sims.splice(sims.indexOf(sim), 1);
      if (keepLogs) process.stderr.write(`  its sidecars' output: ${log}\n`);
      else await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * ECS's stop: the app container has stopped; every sidecar container gets SIGTERM
   * at once; once the proxy's process has exited, the task metadata says the
   * dataplane container has stopped, and health-sync (or control-plane) deregisters,
   * logs out and exits. Returns the ms from SIGTERM to the last sidecar's exit.
   */
  async function stopTask(sim: EcsAgentSimulator, procs: Array<{ role: string; proc: ResultPromise }>, proxy: ResultPromise, log: string): Promise<number> {
    sim.stopContainer('app');
    const t = process.hrtime.bigint();
    void proxy.then(() => sim.stopContainer(DATAPLANE_CONTAINER));
    for (const p of procs) p.proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const p of procs) p.proc.kill('SIGKILL');
    }, 30_000);
    const results = await Promise.all(procs.map(async (p) => ({ role: p.role, r: await p.proc })));
    clearTimeout(timer);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    const sync = results.find((x) => x.role === 'health-sync' || x.role === 'control-plane')!;
    if (sync.r.exitCode !== 0) throw new Error(`${sync.role} did not stop cleanly (exit ${sync.r.exitCode ?? sync.r.signal})${await tail(log)}`);
    return ms;
  }

  /** This task's service instances and login tokens (by the task id in their login meta, which Consul puts in their description) still in Consul. */
  async function leftoversOf(taskId: string): Promise<string[]> {
    const services = (await consul.nodeServices(clusterArn)).filter((s) => s.ID.includes(taskId)).map((s) => `service ${s.ID}`);
    const tokens = (await tokensOf(taskId)).map((t) => `token ${t.AccessorID.slice(0, 8)}… (${t.Description ?? ''})`);
    return [...services, ...tokens];
  }

  async function tokensOf(taskId: string) {
    return (await consul.loginTokens()).filter((t) => t.Description?.includes(taskId));
  }

  /** Removes what a task left (after a failed or unclean round, and after the GNU time run of mesh-init). */
  async function removeTaskLeftovers(taskId: string): Promise<void> {
    for (const s of (await consul.nodeServices(clusterArn)).filter((x) => x.ID.includes(taskId))) {
      await consul.api('PUT', '/v1/catalog/deregister', { Node: clusterArn, ServiceID: s.ID });
    }
    for (const t of await tokensOf(taskId)) {
      await consul.api('DELETE', `/v1/acl/token/${t.AccessorID}`);
    }
  }

  /** mesh-init's peak RSS in MB: the same task's mesh-init again, untimed, under GNU time. */
  async function meshInitPeak(c: Contender, sim: EcsAgentSimulator, env: Record<string, string>): Promise<number> {
    const dir = await mkdtemp(join(tmpdir(), 'bench-ts-peak-'));
    try {
      const cfg = JSON.parse(env.CONSUL_ECS_CONFIG_JSON!) as { bootstrapDir: string };
      cfg.bootstrapDir = dir;
      const [file, args] = commandLine([c.ecs, 'mesh-init'], { peakRss: true });
      const r = await execa(file, args, { env: { ...env, CONSUL_ECS_CONFIG_JSON: JSON.stringify(cfg) }, extendEnv: false, reject: false });
      if (r.exitCode !== 0) throw new Error(`${c.name}: mesh-init under GNU time failed: ${r.stderr}`);
      return peakRssKb(r.stderr) / 1024;
    } finally {
      await removeTaskLeftovers(sim.taskId);
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Waits for `file` to be in place, watching its directory and looking every 5 ms besides. */
  async function fileInPlace(file: string, proc: ResultPromise, log: string): Promise<void> {
    if (existsSync(file)) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        watcher.close();
        clearInterval(timer);
        clearTimeout(deadline);
        proc.off('exit', exited);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        if (existsSync(file)) done();
      };
      const exited = () => void tail(log).then((t) => done(new Error(`the control plane exited before it wrote ${file}${t}`)));
      const watcher = watch(join(file, '..'), check);
      const timer = setInterval(check, 5);
      const deadline = setTimeout(() => void tail(log).then((t) => done(new Error(`${file} not written within 60 s${t}`))), 60_000);
      proc.once('exit', exited);
      check();
    });
  }
} catch (err) {
  exitCode = 1;
  console.error(err);
} finally {
  if (serverTask) await stopServerTask(serverTask);
  if (serverDir) await rm(serverDir, { recursive: true, force: true });
  for (const s of sims) await s.stop();
  serverApp?.close();
  await Promise.all([consul.dispose(), moto.dispose()]);
}
process.exitCode = exitCode;

/** Stops the server task as ECS would (see stopTask), SIGKILL after 30 s. */
async function stopServerTask(t: NonNullable<typeof serverTask>): Promise<void> {
  t.sim.stopContainer('app');
  void t.dataplane?.then(() => t.sim.stopContainer(DATAPLANE_CONTAINER));
  if (!t.dataplane) t.sim.stopContainer(DATAPLANE_CONTAINER);
  const procs = [t.controlPlane, ...(t.dataplane ? [t.dataplane] : [])];
  for (const p of procs) p.kill('SIGTERM');
  const timer = setTimeout(() => procs.forEach((p) => p.kill('SIGKILL')), 30_000);
  await Promise.all(procs);
  clearTimeout(timer);
}

interface TaskPorts {
  publicListener: number;
  ready: number;
  upstream: number;
  admin: number;
  xds: number;
  graceful: number;
  merge: number;
}

/** A task's own ports on the shared loopback. */
async function taskPorts(): Promise<TaskPorts> {
  const [publicListener, ready, upstream, admin, xds, graceful, merge] = await freePorts(7);
  return { publicListener: publicListener!, ready: ready!, upstream: upstream!, admin: admin!, xds: xds!, graceful: graceful!, merge: merge! };
}

/**
 * envoy-bootstrap.json with its admin listener on `port` instead of 19000, and the
 * ready listener's route to it too, written beside it; returns the new file.
 */
function moveEnvoyAdmin(file: string, port: number): string {
  const bootstrap = JSON.parse(readFileSync(file, 'utf8'));
  bootstrap.admin.address.socket_address.port_value = port;
  for (const c of bootstrap.static_resources?.clusters ?? []) {
    if (c.name === 'self_admin') c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = port;
  }
  const local = file.replace(/\.json$/, '.local.json');
  writeFileSync(local, JSON.stringify(bootstrap), { mode: 0o600 });
  return local;
}

interface RoundResult {
  /** From the first sidecar process's start to the first reply from the server app through the mesh. */
  firstMs: number;
  /** To the first connection the client's Envoy accepted on the upstream port. */
  connectMs: number;
  /** To mesh-init's exit, or to the file the proxy reads being in place. */
  initMs: number;
  /** To the proxy's (Envoy's or consul-dataplane's) start. */
  proxyStartMs: number;
  /** ours A: this script's rewrite of Envoy's admin port (inside proxyStartMs). */
  rewriteMs: number;
  attempts: number;
  steadyMb: number;
  peakMb: number;
  meshInitPeakMb: number;
  byRole: Record<string, number>;
  stopMs: number;
  /** The task's login tokens while it ran (mesh-init's own is gone by then). */
  tokens: number;
  clean: boolean;
  leftovers: string;
}

/** The processes' trees (consul-dataplane runs Envoy as its child): resident and peak sizes summed, in MB, and the resident size by process name. */
function memoryOf(procs: Array<{ role: string; proc: ResultPromise }>): { rssMb: number; hwmMb: number; byRole: Record<string, number> } {
  let rss = 0;
  let hwm = 0;
  const byRole: Record<string, number> = {};
  const visit = (pid: number, role: string) => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    rss += kb('VmRSS');
    hwm += kb('VmHWM');
    byRole[role] = (byRole[role] ?? 0) + kb('VmRSS') / 1024;
    for (const child of childrenOf(pid)) visit(child, readFileSync(`/proc/${child}/comm`, 'utf8').trim());
  };
  for (const p of procs) visit(p.proc.pid!, p.role);
  return { rssMb: rss / 1024, hwmMb: hwm / 1024, byRole };
}

function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
}

async function until(what: string, timeoutMs: number, probe: () => Promise<true | undefined>, log: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${await tail(log)}`);
    await sleep(50);
  }
}

/** The end of a log, for an error message. */
async function tail(log: string): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '');
  const lines = text.trimEnd().split('\n').slice(-20).join('\n');
  return lines ? `\n--- the end of ${log}:\n${lines}` : '';
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}

function firstLine(argv: string[]): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .trim()
      .split('\n')[0]!
      .trim();
  } catch (err) {
    return `(${(err as Error).message.split('\n')[0]})`;
  }
}

/** Prints the tables; returns the exit code (1 when a round left something behind). */
function report(samples: Record<string, RoundResult[]>): number {
  const ref = anchor ? ANCHOR_NAME : undefined;
  const med = (name: string, f: (r: RoundResult) => number) => median(samples[name]!.map(f));
  console.log(`\ntask start benchmark: ${runs} rounds (after a warm-up round), contenders alternating, each round a fresh client task`);
  console.log(
    `first request: from the first sidecar process's start to the server app's reply through both Envoys (mTLS); the client app polls every ${pollMs} ms`,
  );
  console.log(
    `steady RSS: the task's sidecar processes together, ${steadySeconds} s after the first request; page cache ${dropCaches ? 'dropped once before the warm-up round' : 'left as it is'}`,
  );
  const cols = ['first ms', 'p25', 'p75', 'init ms', 'proxy→1st', 'peak MB', 'steady MB', 'stop ms'];
  const ratioCols = ['first ×', 'paired Δ', 'peak ×', 'steady ×'];
  console.log(`${'contender'.padEnd(44)} ${cols.map((c) => c.padStart(9)).join(' ')}${ref ? `  ${ratioCols.map((c) => c.padStart(8)).join(' ')}` : ''}`);
  let unclean = 0;
  for (const c of contenders) {
    const s = samples[c.name]!;
    const first = s.map((r) => r.firstMs);
    const values = [
      median(first),
      quantile(first, 0.25),
      quantile(first, 0.75),
      med(c.name, (r) => r.initMs),
      med(c.name, (r) => r.firstMs - r.proxyStartMs),
      med(c.name, (r) => r.peakMb),
      med(c.name, (r) => r.steadyMb),
      med(c.name, (r) => r.stopMs),
    ].map((v, i) => v.toFixed(i >= 5 && i <= 6 ? 1 : 0));
    let line = `${c.name.padEnd(44)} ${values.map((v) => v.padStart(9)).join(' ')}`;
    if (ref) {
      // Each round runs every contender once: the median of a round's difference cancels the machine's drift.
      const paired = median(s.map((r, i) => r.firstMs - samples[ref]![i]!.firstMs));
      line += `  ${[
        ratio(
          median(first),
          med(ref, (r) => r.firstMs),
        ),
        `${paired > 0 ? '+' : ''}${paired.toFixed(0)}`,
        ratio(
          med(c.name, (r) => r.peakMb),
          med(ref, (r) => r.peakMb),
        ),
        ratio(
          med(c.name, (r) => r.steadyMb),
          med(ref, (r) => r.steadyMb),
        ),
      ]
        .map((x) => x.padStart(8))
        .join(' ')}`;
    }
    console.log(line);
    unclean += s.filter((r) => !r.clean).length;
  }
  if (ref) console.log("(× is ours / anchor; paired Δ is the median over rounds of ours minus the anchor's first-request time in the same round, ms)");
  else console.log('anchor: not measured (--no-anchor)');
  console.log('\nwhere the time goes (medians, ms from the start) and the steady RSS by process (medians, MB)');
  for (const c of contenders) {
    const s = samples[c.name]!;
    const roles = [...new Set(s.flatMap((r) => Object.keys(r.byRole)))];
    const parts = [
      `init ${med(c.name, (r) => r.initMs).toFixed(0)}`,
      `proxy started ${med(c.name, (r) => r.proxyStartMs).toFixed(0)}`,
      ...(c.shape === 'control-plane+envoy' ? [`(admin port rewrite ${med(c.name, (r) => r.rewriteMs).toFixed(1)})`] : []),
      `upstream port accepts ${med(c.name, (r) => r.connectMs).toFixed(0)}`,
      `first reply ${med(c.name, (r) => r.firstMs).toFixed(0)}`,
      `(${med(c.name, (r) => r.attempts).toFixed(0)} requests)`,
    ];
    const mem = roles.map((role) => `${role} ${median(s.map((r) => r.byRole[role] ?? 0)).toFixed(1)}`);
    if (c.shape === 'mesh-init+dataplane') mem.push(`(mesh-init peak ${med(c.name, (r) => r.meshInitPeakMb).toFixed(1)})`);
    console.log(`${c.name.padEnd(44)} ${parts.join(', ')}`);
    console.log(
      `${''.padEnd(44)} RSS: ${mem.join(', ')}; login tokens while up ${med(c.name, (r) => r.tokens)}; clean stops ${s.filter((r) => r.clean).length}/${s.length}`,
    );
  }
  for (const c of contenders) {
    for (const r of samples[c.name]!.filter((x) => !x.clean)) console.log(`${c.name}: left behind ${r.leftovers}`);
  }
  console.log('\nversions');
  console.log(`  consul-ecs-ts: ${firstLine([SEA, 'version'])} (the self-contained executable)`);
  if (anchor) console.log(`  anchor: ${firstLine([anchor, 'version'])} (${anchor})`);
  console.log(
    `  consul-dataplane: ${firstLine([OUR_DATAPLANE, '-version'])} (ours B, the server task)${ANCHOR_DATAPLANE ? `; ${firstLine([ANCHOR_DATAPLANE, '-version'])} (the anchor)` : ''}`,
  );
  console.log(`  envoy: ${firstLine([peerBinary('envoy'), '--version']).replace(/^.*version: /, '')}`);
  console.log(`  consul: ${firstLine([peerBinary('consul'), 'version'])}; Node.js (this script) ${process.version}`);
  console.log(
    "the server task (ours control-plane + consul-dataplane 1.9.9) stays up for every round; the rule each contender's proxy starts by is in the header of scripts/bench-task-start.ts",
  );
  return unclean ? 1 : 0;
}
