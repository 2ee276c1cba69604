// Benchmark of the control plane against the same simulated task and Consul:
//  - mesh-init: time from start to the "successfully initialized" log line, time
//    to exit 0 (what ECS waits for before starting the dataplane), and peak RSS;
//  - health-sync's steady-state RSS (and its anonymous part) and CPU over a window
//    with ten synced containers;
//  - net-dial's (the dataplane container's health check) wall time and peak RSS;
//  - the controller's steady-state RSS and CPU over a window, watching a cluster
//    of ten running mesh tasks in moto's ECS.
// Runs the self-contained executable (what the images run), the bundle on this
// machine's Node.js and the anchor (hashicorp/consul-ecs), alternating, and prints
// ratios to the anchor. Not a test. The anchor is built into the peers cache
// (scripts/peers.sh anchor: from its Go module, or from the checkout of its release
// in CONSUL_ECS_ANCHOR_SRC), unless --anchor=PATH names a binary of it;
// --no-anchor measures ours alone.
//
// Resident file-backed pages depend on the page cache: a binary that was just
// written is mapped in large folios, and counts ~20 MB more than one read from
// disk. When it may (root), the script drops the page cache before each
// health-sync and controller run so that every contender starts as a container's first run does
// (--no-drop-caches to skip); the anonymous part is printed as well, which the
// page cache does not affect.
//   node --import tsx scripts/bench-control-plane.ts [--runs=N] [--seconds=S] [--anchor=PATH | --no-anchor] [--also=PATH] [--no-drop-caches]
// --also=PATH adds another build of our executable (e.g. one kept from before a change).
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './lib/aws-admin.ts';
import { configureIamAuthMethod, startConsulAndMoto } from './lib/local-stack.ts';
import { anchorBinary, commandLine, median, peakRssKb, ratio, requireGnuTime } from './lib/bench.ts';
import { canDropPageCache, dropPageCache } from './lib/page-cache.ts';

const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const runs = Number(arg('runs', '9'));
const seconds = Number(arg('seconds', '60'));
const anchor = await anchorBinary();
const dropCaches = !process.argv.includes('--no-drop-caches') && canDropPageCache();
const INITIALISED = 'successfully initialized the task';
const SEA = fileURLToPath(new URL('../packages/cli/dist/sea/consul-ecs', import.meta.url));
const BUNDLE = fileURLToPath(new URL('../packages/cli/bin/consul-ecs.cjs', import.meta.url));
if (!existsSync(SEA)) throw new Error(`${SEA} is missing: run npm run build`);
requireGnuTime();

const contenders: Record<string, string[]> = {
  'consul-ecs-ts (executable)': [SEA],
  [`consul-ecs-ts (node ${process.version})`]: [process.execPath, BUNDLE],
};
// Another build of ours (e.g. one kept from before a change), as a contender of its own.
const also = arg('also', '');
if (also) contenders[`consul-ecs (executable at ${also})`] = [also];
if (anchor) contenders['hashicorp/consul-ecs (anchor)'] = [anchor];

const SERVER_ID = 'consul.bench.local';
const [consul, moto] = await startConsulAndMoto();
const sims: EcsAgentSimulator[] = [];
try {
  await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID });
  const role = await moto.admin.createRole({ name: 'bench-task', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } });
  const containers = Array.from({ length: 10 }, (_, i) => `app${i}`);
  const sim = await new EcsAgentSimulator({
    family: 'web',
    credentials: assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: role.arn }),
    containers: [...containers, 'consul-dataplane'].map((name) => ({ name, hasHealthCheck: true, health: 'HEALTHY' as const })),
  }).start();
  sims.push(sim);
  await consul.api('PUT', '/v1/catalog/register', { Node: sim.clusterArn, Address: '127.0.0.1', NodeMeta: { 'synthetic-node': 'true' } });
  const config = (dir: string) => ({
    bootstrapDir: dir,
    consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: consul.ports.http }, grpc: { port: consul.ports.grpc } },
    consulLogin: { enabled: true, stsEndpoint: moto.url, serverIdHeaderValue: SERVER_ID },
    service: { name: 'web', port: 8080 },
    // As terraform's mesh-task always writes it; the anchor dereferences it.
    proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
    healthSyncContainers: containers,
    transparentProxy: { enabled: false },
  });
  const env = (dir: string) => ({
    ...sim.containerEnv(),
    CONSUL_ECS_CONFIG_JSON: JSON.stringify(config(dir)),
    CONSUL_ECS_EXECUTABLE: SEA,
    PATH: process.env.PATH ?? '',
  });
  const cleanup = async () => {
    for (const id of [`web-${sim.taskId}`, `web-${sim.taskId}-sidecar-proxy`]) {
      await consul.api('PUT', '/v1/catalog/deregister', { Node: sim.clusterArn, ServiceID: id });
    }
    for (const t of await consul.loginTokens()) await consul.api('DELETE', `/v1/acl/token/${t.AccessorID}`);
  };

  // 1. Time to "task initialised", and peak RSS. GNU time, which reports the peak RSS,
  // delays what it runs by a few ms, and not the same for every contender (~5.6 ms for
  // the executable, ~1.9 for the anchor, measured alternating): each run is timed
  // on its own and then run again under GNU time for its RSS.
  const meshInit = async (name: string, argv: string[], underGnuTime: boolean) => {
    const dir = await mkdtemp(join(tmpdir(), 'bench-cp-'));
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e6;
    const [file, args] = commandLine([...argv, 'mesh-init'], { peakRss: underGnuTime });
    const child = execa(file, args, { env: env(dir), extendEnv: false, reject: false });
    let ms = Number.NaN;
    let seen = '';
    const watch = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      if (Number.isNaN(ms) && seen.includes(INITIALISED)) ms = elapsed();
    };
    child.stdout!.on('data', watch);
    child.stderr!.on('data', watch);
    const r = await child;
    const exitMs = elapsed();
    if (r.exitCode !== 0 || Number.isNaN(ms)) throw new Error(`${name} mesh-init failed: ${r.stderr}`);
    await cleanup();
    await rm(dir, { recursive: true, force: true });
    return { ms, exitMs, rssKb: underGnuTime ? peakRssKb(r.stderr) : Number.NaN };
  };
  const ready: Record<string, Array<{ ms: number; exitMs: number; rssKb: number }>> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let i = 0; i <= runs; i++) {
    for (const [name, argv] of Object.entries(contenders)) {
      const { ms, exitMs } = await meshInit(name, argv, false);
      const { rssKb } = await meshInit(name, argv, true);
      if (i > 0) ready[name]!.push({ ms, exitMs, rssKb });
    }
  }

  // 2. health-sync steady state with ten synced containers.
  const steady: Record<string, Steady> = {};
  for (const [name, argv] of Object.entries(contenders)) {
    const dir = await mkdtemp(join(tmpdir(), 'bench-hs-'));
    if (dropCaches) dropPageCache();
    const init = await execa(argv[0]!, [...argv.slice(1), 'mesh-init'], { env: env(dir), extendEnv: false, reject: false });
    if (init.exitCode !== 0) throw new Error(`${name} mesh-init failed: ${init.stderr}`);
    const hs = execa(argv[0]!, [...argv.slice(1), 'health-sync'], { env: env(dir), extendEnv: false, reject: false });
    let flip = 0;
    // Keep the sync busy: one container flips health every 5 s.
    steady[name] = await steadyState(hs.pid!, seconds, () => {
      if (++flip % 5 === 0) sim.setHealth('app0', flip % 10 === 0 ? 'HEALTHY' : 'UNHEALTHY');
    });
    hs.kill('SIGKILL');
    await hs;
    await cleanup();
    await rm(dir, { recursive: true, force: true });
  }

  // 3. net-dial, the dataplane container's health check: a short process at every interval.
  const dial: Record<string, Array<{ ms: number; rssKb: number }>> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let i = 0; i <= runs * 3; i++) {
    for (const [name, argv] of Object.entries(contenders)) {
      // Timed on its own, then its RSS under GNU time (as mesh-init above).
      const dialArgv = [...argv, 'net-dial', `127.0.0.1:${consul.ports.http}`];
      const started = process.hrtime.bigint();
      const timed = await execa(...commandLine(dialArgv, { peakRss: false }), { reject: false });
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const r = await execa(...commandLine(dialArgv, { peakRss: true }), { reject: false });
      if (timed.exitCode !== 0 || r.exitCode !== 0) throw new Error(`${name} net-dial failed: ${timed.stderr}${r.stderr}`);
      if (i > 0) dial[name]!.push({ ms, rssKb: peakRssKb(r.stderr) });
    }
  }

  // 4. The controller's steady state, watching a cluster of ten running mesh tasks.
  await moto.admin.createCluster(sim.cluster);
  await moto.admin.runTasks(sim.cluster, 'web', { count: 10, tags: { 'consul.hashicorp.com/mesh': 'true' } });
  const [own] = await moto.admin.runTasks(sim.cluster, 'consul-ecs-controller');
  const ctrlRole = await moto.admin.createRole({
    name: 'bench-controller',
    path: '/ecs/',
    allowGetRole: false,
    allowActions: ['ecs:ListTasks', 'ecs:DescribeTasks'],
  });
  const ctrlSim = await new EcsAgentSimulator({
    family: 'consul-ecs-controller',
    cluster: sim.cluster,
    taskId: own!.taskArn!.split('/').pop()!,
    credentials: assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: ctrlRole.arn }),
  }).start();
  sims.push(ctrlSim);
  const ctrlEnv = {
    ...ctrlSim.containerEnv(),
    CONSUL_ECS_CONFIG_JSON: JSON.stringify({ ...config('/consul'), consulLogin: undefined, service: undefined, controller: { iamRolePath: '/consul-ecs/' } }),
    CONSUL_HTTP_TOKEN: consul.managementToken,
    AWS_ENDPOINT_URL_ECS: moto.url,
    PATH: process.env.PATH ?? '',
  };
  const controller: Record<string, Steady> = {};
  for (const [name, argv] of Object.entries(contenders)) {
    if (dropCaches) dropPageCache();
    const c = execa(argv[0]!, [...argv.slice(1), 'controller'], { env: ctrlEnv, extendEnv: false, reject: false });
    controller[name] = await steadyState(c.pid!, seconds);
    c.kill('SIGKILL');
    const r = await c;
    // Killed by the benchmark, not ended by itself.
    if (!r.isTerminated) throw new Error(`${name} controller exited with ${String(r.exitCode)}: ${r.stderr}`);
  }

  const ref = anchor ? 'hashicorp/consul-ecs (anchor)' : undefined;
  console.log(`\ncontrol-plane benchmark: ${runs} mesh-init runs each, health-sync for ${seconds}s with ${containers.length} synced containers`);
  console.log(`page cache ${dropCaches ? 'dropped before each health-sync run' : 'left as it is (RSS includes whatever file pages it holds)'}`);
  const cols = ['ready ms', 'exit ms', 'peak MB', 'hs RSS MB', 'hs anon MB', 'hs max MB', 'hs CPU %'];
  const ratioCols = ['ready ×', 'exit ×', 'RSS ×', 'CPU ×'];
  console.log(`${'contender'.padEnd(36)} ${cols.map((c) => c.padStart(10)).join(' ')}${ref ? `  ${ratioCols.map((c) => c.padStart(7)).join(' ')}` : ''}`);
  const figures = (name: string) => ({
    ms: median(ready[name]!.map((s) => s.ms)),
    exitMs: median(ready[name]!.map((s) => s.exitMs)),
    peak: median(ready[name]!.map((s) => s.rssKb)) / 1024,
    ...steady[name]!,
  });
  for (const name of Object.keys(contenders)) {
    const f = figures(name);
    const values = [
      f.ms.toFixed(0),
      f.exitMs.toFixed(0),
      f.peak.toFixed(1),
      f.rssMb.toFixed(1),
      f.anonMb.toFixed(1),
      f.maxRssMb.toFixed(1),
      f.cpuPct.toFixed(2),
    ];
    let line = `${name.padEnd(36)} ${values.map((v) => v.padStart(10)).join(' ')}`;
    if (ref) {
      const a = figures(ref);
      line += `  ${[ratio(f.ms, a.ms), ratio(f.exitMs, a.exitMs), ratio(f.rssMb, a.rssMb), ratio(f.cpuPct, a.cpuPct)].map((x) => x.padStart(7)).join(' ')}`;
    }
    console.log(line);
  }
  console.log("targets: ready at most half the anchor's (ready × ≤ 0.50); health-sync steady RSS under 60 MB");
  console.log(`\nnet-dial (the dataplane container's health check), ${runs * 3} runs each, alternating`);
  console.log(`${'contender'.padEnd(36)} ${['wall ms', 'peak MB'].map((c) => c.padStart(10)).join(' ')}${ref ? `  ${'wall ×'.padStart(7)}` : ''}`);
  const dialMs = (name: string) => median(dial[name]!.map((d) => d.ms));
  for (const name of Object.keys(contenders)) {
    const values = [dialMs(name).toFixed(1), (median(dial[name]!.map((d) => d.rssKb)) / 1024).toFixed(1)];
    console.log(`${name.padEnd(36)} ${values.map((v) => v.padStart(10)).join(' ')}${ref ? `  ${ratio(dialMs(name), dialMs(ref)).padStart(7)}` : ''}`);
  }
  console.log(`\ncontroller steady state over ${seconds}s, a cluster of 10 running mesh tasks, one pass every 10 s`);
  console.log(
    `${'contender'.padEnd(36)} ${['RSS MB', 'anon MB', 'max MB', 'CPU %'].map((c) => c.padStart(10)).join(' ')}${ref ? `  ${['RSS ×', 'CPU ×'].map((c) => c.padStart(7)).join(' ')}` : ''}`,
  );
  for (const name of Object.keys(contenders)) {
    const c = controller[name]!;
    const values = [c.rssMb.toFixed(1), c.anonMb.toFixed(1), c.maxRssMb.toFixed(1), c.cpuPct.toFixed(2)];
    const ratios = ref ? `  ${[ratio(c.rssMb, controller[ref]!.rssMb), ratio(c.cpuPct, controller[ref]!.cpuPct)].map((x) => x.padStart(7)).join(' ')}` : '';
    console.log(`${name.padEnd(36)} ${values.map((v) => v.padStart(10)).join(' ')}${ratios}`);
  }
  if (!ref) console.log('anchor: not measured (--no-anchor)');
} finally {
  for (const s of sims) await s.stop();
  await Promise.all([consul.dispose(), moto.dispose()]);
}

interface Steady {
  rssMb: number;
  anonMb: number;
  maxRssMb: number;
  cpuPct: number;
}

/**
 * A running process's steady state over `seconds` after a 5 s warm-up: median
 * resident and anonymous memory and the largest resident size (sampled every
 * second), and its CPU use. `tick` runs before each sample.
 */
async function steadyState(pid: number, seconds: number, tick?: () => void): Promise<Steady> {
  const ticks = () => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]);
  };
  /** The process's resident and anonymous memory, in MB, from one read of its status. */
  const memory = () => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const mb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1]) / 1024;
    return { rss: mb('VmRSS'), anon: mb('RssAnon') };
  };
  await new Promise((r) => setTimeout(r, 5000)); // warm up
  const t0 = ticks();
  const w0 = Date.now();
  const samples: number[] = [];
  const anon: number[] = [];
  while (Date.now() - w0 < seconds * 1000) {
    tick?.();
    const m = memory();
    samples.push(m.rss);
    anon.push(m.anon);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const cpuPct = ((ticks() - t0) / 100 / ((Date.now() - w0) / 1000)) * 100;
  return { rssMb: median(samples), anonMb: median(anon), maxRssMb: Math.max(...samples), cpuPct };
}
