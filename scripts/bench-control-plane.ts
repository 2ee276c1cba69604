// Benchmark of the control plane against the same simulated task and Consul:
//  - time from start to "task initialised" (mesh-init exits 0) and its peak RSS;
//  - health-sync's steady-state RSS and CPU over a window with ten synced containers.
// Runs the self-contained executable (what the images run) and the bundle on this
// machine's Node.js. The anchor (hashicorp/consul-ecs) is compared when its binary
// is given with --anchor=PATH; this machine's Go module proxy refuses that module,
// so it cannot be built here. Prints figures; not a test.
//   node --import tsx scripts/bench-control-plane.ts [--runs=N] [--seconds=S] [--anchor=PATH]
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './lib/aws-admin.ts';
import { configureIamAuthMethod, startConsulAndMoto } from './lib/local-stack.ts';

const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const runs = Number(arg('runs', '9'));
const seconds = Number(arg('seconds', '60'));
const anchor = arg('anchor', '');
const SEA = fileURLToPath(new URL('../packages/control-plane/dist/sea/consul-ecs', import.meta.url));
const BUNDLE = fileURLToPath(new URL('../packages/control-plane/bin/consul-ecs.cjs', import.meta.url));
const TIME = '/usr/bin/time';
if (!existsSync(SEA)) throw new Error(`${SEA} is missing: run npm run build`);
if (!existsSync(TIME)) throw new Error('GNU time is needed for peak RSS: apt-get install time');

const contenders: Record<string, string[]> = {
  'consul-ecs-ts (executable)': [SEA],
  [`consul-ecs-ts (node ${process.version})`]: [process.execPath, BUNDLE],
};
if (anchor) contenders['hashicorp/consul-ecs (anchor)'] = [anchor];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

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
    healthSyncContainers: containers,
    transparentProxy: { enabled: false },
  });
  const env = (dir: string) => ({ ...sim.containerEnv(), CONSUL_ECS_CONFIG_JSON: JSON.stringify(config(dir)), CONSUL_ECS_EXECUTABLE: SEA, PATH: process.env.PATH ?? '' });
  const cleanup = async () => {
    for (const id of [`web-${sim.taskId}`, `web-${sim.taskId}-sidecar-proxy`]) {
      await consul.api('PUT', '/v1/catalog/deregister', { Node: sim.clusterArn, ServiceID: id });
    }
    const tokens = await consul.api<Array<{ AccessorID: string; AuthMethod?: string }>>('GET', '/v1/acl/tokens');
    for (const t of tokens.filter((x) => x.AuthMethod)) await consul.api('DELETE', `/v1/acl/token/${t.AccessorID}`);
  };

  // 1. Time to "task initialised".
  const ready: Record<string, Array<{ ms: number; rssKb: number }>> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let i = 0; i <= runs; i++) {
    for (const [name, argv] of Object.entries(contenders)) {
      const dir = await mkdtemp(join(tmpdir(), 'bench-cp-'));
      const started = process.hrtime.bigint();
      const r = await execa(TIME, ['-f', '%M', ...argv, 'mesh-init'], { env: env(dir), extendEnv: false, reject: false });
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (r.exitCode !== 0) throw new Error(`${name} mesh-init failed: ${r.stderr}`);
      if (i > 0) ready[name]!.push({ ms, rssKb: Number(/(\d+)\s*$/.exec(String(r.stderr))?.[1]) });
      await cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  }

  // 2. health-sync steady state with ten synced containers.
  const steady: Record<string, { rssMb: number; maxRssMb: number; cpuPct: number }> = {};
  for (const [name, argv] of Object.entries(contenders)) {
    const dir = await mkdtemp(join(tmpdir(), 'bench-hs-'));
    const init = await execa(argv[0]!, [...argv.slice(1), 'mesh-init'], { env: env(dir), extendEnv: false, reject: false });
    if (init.exitCode !== 0) throw new Error(`${name} mesh-init failed: ${init.stderr}`);
    const hs = execa(argv[0]!, [...argv.slice(1), 'health-sync'], { env: env(dir), extendEnv: false, reject: false });
    const pid = hs.pid!;
    const ticks = () => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
    await new Promise((r) => setTimeout(r, 5000)); // warm up
    const t0 = ticks();
    const w0 = Date.now();
    const samples: number[] = [];
    let flip = 0;
    while (Date.now() - w0 < seconds * 1000) {
      // Keep the sync busy: one container flips health every 5 s.
      if (++flip % 5 === 0) sim.setHealth('app0', flip % 10 === 0 ? 'HEALTHY' : 'UNHEALTHY');
      samples.push(rss());
      await new Promise((r) => setTimeout(r, 1000));
    }
    const cpuPct = ((ticks() - t0) / 100 / ((Date.now() - w0) / 1000)) * 100;
    steady[name] = { rssMb: median(samples), maxRssMb: Math.max(...samples), cpuPct };
    hs.kill('SIGKILL');
    await hs;
    await cleanup();
    await rm(dir, { recursive: true, force: true });
  }

  const ref = anchor ? 'hashicorp/consul-ecs (anchor)' : undefined;
  console.log(`\ncontrol-plane benchmark: ${runs} mesh-init runs each, health-sync for ${seconds}s with ${containers.length} synced containers`);
  console.log(`${'contender'.padEnd(36)} ${'ready ms'.padStart(9)} ${'peak MB'.padStart(8)} ${'hs RSS MB'.padStart(10)} ${'hs max MB'.padStart(10)} ${'hs CPU %'.padStart(9)}${ref ? '  ready ratio  RSS ratio' : ''}`);
  for (const name of Object.keys(contenders)) {
    const ms = median(ready[name]!.map((s) => s.ms));
    const peak = median(ready[name]!.map((s) => s.rssKb)) / 1024;
    const st = steady[name]!;
    let line = `${name.padEnd(36)} ${ms.toFixed(0).padStart(9)} ${peak.toFixed(1).padStart(8)} ${st.rssMb.toFixed(1).padStart(10)} ${st.maxRssMb.toFixed(1).padStart(10)} ${st.cpuPct.toFixed(2).padStart(9)}`;
    if (ref) {
      const refMs = median(ready[ref]!.map((s) => s.ms));
      line += `  ${(ms / refMs).toFixed(2).padStart(11)}  ${(st.rssMb / steady[ref]!.rssMb).toFixed(2).padStart(9)}`;
    }
    console.log(line);
  }
  if (!ref) console.log('anchor: not measured (pass --anchor=PATH to a hashicorp/consul-ecs binary; the Go module proxy here refuses that module)');
} finally {
  for (const s of sims) await s.stop();
  await Promise.all([consul.dispose(), moto.dispose()]);
}
