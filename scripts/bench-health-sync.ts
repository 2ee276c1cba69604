// Benchmark of health-sync with many containers in a task, ours against the
// anchor's (hashicorp/consul-ecs v0.10.0): the ECS agent simulator reports C
// containers with health checks (and consul-dataplane), each contender's own
// mesh-init registers the task, then its health-sync runs under GNU time and
// talks to Consul through a counting proxy (scripts/lib/counting-proxy.ts).
// B batches each change the health of K containers at once; for each, the calls
// that reach Consul until it shows the whole change (and a quiet 1.5 s after),
// and the time until it does. Prints the catalog writes per batch, the CPU time
// over the batches, the whole run's CPU time and peak RSS, and ratios to the anchor.
//   node --import tsx scripts/bench-health-sync.ts [--containers=C] [--batch=K] [--batches=B] [--anchor=PATH | --no-anchor] [--ours=PATH]
// Defaults: 50 containers, batches of 25, 10 batches.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './lib/aws-admin.ts';
import { anchorBinary, GNU_TIME, median, ratio, requireGnuTime } from './lib/bench.ts';
import { countByOperation, CountingProxy } from './lib/counting-proxy.ts';
import { appContainers, applyBatch, batchChanges, checkStatuses, type BatchOutcome } from './lib/health-batches.ts';
import { configureIamAuthMethod, startConsulAndMoto } from './lib/local-stack.ts';

const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const containerCount = Number(arg('containers', '50'));
const batchSize = Number(arg('batch', String(Math.ceil(containerCount / 2))));
const batchCount = Number(arg('batches', '10'));
const SEA = fileURLToPath(new URL('../packages/cli/dist/sea/consul-ecs', import.meta.url));
const ours = arg('ours', SEA);
const anchor = await anchorBinary();
if (!(containerCount > 0 && batchSize > 0 && batchSize <= containerCount && batchCount > 0))
  throw new Error('--containers, --batch, --batches: 0 < batch ≤ containers, batches > 0');
requireGnuTime();

const SERVER_ID = 'consul.bench.local';
const SERVICE = 'web';

interface Figures {
  batches: BatchOutcome[];
  /** CPU seconds of health-sync over the batches. */
  batchCpuS: number;
  cpuS: number;
  peakRssMb: number;
}

const contenders: Record<string, string> = { 'consul-ecs-ts (executable)': ours };
if (anchor) contenders['hashicorp/consul-ecs (anchor)'] = anchor;
const results: Record<string, Figures> = {};

const [consul, moto] = await startConsulAndMoto();
const sims: EcsAgentSimulator[] = [];
const proxy = await CountingProxy.start({ target: consul.httpAddr });
try {
  await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID });
  const role = await moto.admin.createRole({ name: 'bench-task', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: SERVICE } });
  const containers = appContainers(containerCount);
  const sim = await new EcsAgentSimulator({
    family: SERVICE,
    credentials: assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: role.arn }),
    containers: [...containers, 'consul-dataplane'].map((name) => ({ name, hasHealthCheck: true, health: 'HEALTHY' as const })),
  }).start();
  sims.push(sim);
  await consul.api('PUT', '/v1/catalog/register', { Node: sim.clusterArn, Address: '127.0.0.1', NodeMeta: { 'synthetic-node': 'true' } });
  const serviceId = `${SERVICE}-${sim.taskId}`;
  const env = (dir: string) => ({
    ...sim.containerEnv(),
    CONSUL_ECS_CONFIG_JSON: JSON.stringify({
      bootstrapDir: dir,
      consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: proxy.port }, grpc: { port: consul.ports.grpc } },
      consulLogin: { enabled: true, stsEndpoint: moto.url, serverIdHeaderValue: SERVER_ID },
      service: { name: SERVICE, port: 8080 },
      // As terraform's mesh-task always writes it; the anchor dereferences it.
      proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
      healthSyncContainers: containers,
      transparentProxy: { enabled: false },
    }),
    CONSUL_ECS_EXECUTABLE: SEA,
    PATH: process.env.PATH ?? '',
  });

  for (const [name, binary] of Object.entries(contenders)) {
    console.error(`${name}: ${batchCount} batches of ${batchSize} of ${containerCount} containers`);
    const dir = await mkdtemp(join(tmpdir(), 'bench-hs-scale-'));
    try {
      for (const c of [...containers, 'consul-dataplane']) sim.setHealth(c, 'HEALTHY');
      sim.setStatus('consul-dataplane', 'RUNNING');
      const init = await execa(binary, ['mesh-init'], { env: env(dir), extendEnv: false, reject: false });
      if (init.exitCode !== 0) throw new Error(`${name} mesh-init failed: ${init.stderr}`);
      const proc = execa(GNU_TIME, ['-f', '%U %S %M', binary, 'health-sync'], { env: env(dir), extendEnv: false, reject: false });
      const child = await childOf(proc.pid!);
      // Started when every check passes (its first sync), and a quiet second after.
      await waitUntil(`${name} health-sync's first sync`, 20_000, async () => {
        const s = await checkStatuses(consul, SERVICE, serviceId);
        return s.size === containerCount + 1 && [...s.values()].every((v) => v === 'passing');
      });
      await new Promise((r) => setTimeout(r, 1000));
      const health = new Map(containers.map((c) => [c, 'HEALTHY' as const] as [string, 'HEALTHY' | 'UNHEALTHY']));
      const cpu0 = cpuTicks(child);
      const batches: BatchOutcome[] = [];
      for (let b = 0; b < batchCount; b++) {
        batches.push(await applyBatch({ sim, consul, proxy, serviceName: SERVICE, serviceId, changes: batchChanges(containers, b, batchSize), health }));
      }
      const batchCpuS = (cpuTicks(child) - cpu0) / 100;
      // Stopped as ECS stops a task: SIGTERM, then the dataplane container exits.
      process.kill(child, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 1500));
      sim.stopContainer('consul-dataplane');
      const r = await proc;
      const [user, sys, rss] = (String(r.stderr).trimEnd().split('\n').pop() ?? '').trim().split(/\s+/).map(Number);
      if (![user, sys, rss].every(Number.isFinite)) throw new Error(`${name} health-sync: no figures from GNU time: ${String(r.stderr).slice(-2000)}`);
      results[name] = { batches, batchCpuS, cpuS: user! + sys!, peakRssMb: rss! / 1024 };
    } finally {
      for (const t of await consul.loginTokens()) await consul.api('DELETE', `/v1/acl/token/${t.AccessorID}`);
      for (const id of [serviceId, `${serviceId}-sidecar-proxy`]) await consul.api('PUT', '/v1/catalog/deregister', { Node: sim.clusterArn, ServiceID: id });
      await rm(dir, { recursive: true, force: true });
    }
  }
} finally {
  await proxy.close();
  for (const s of sims) await s.stop();
  await Promise.all([consul.dispose(), moto.dispose()]);
}
report();

/** GNU time's child: the contender's process. */
async function childOf(pid: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const child = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
    if (child) return Number(child);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`GNU time (pid ${pid}) started no child`);
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
}

async function waitUntil(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function report(): void {
  const names = Object.keys(results);
  const ref = anchor ? 'hashicorp/consul-ecs (anchor)' : undefined;
  const figures = (name: string) => {
    const r = results[name]!;
    const writes = r.batches.map((b) => b.calls.filter((c) => c.operation === 'PUT /v1/catalog/register').length);
    return {
      writesPerBatch: median(writes),
      maxWrites: Math.max(...writes),
      callsPerBatch: median(r.batches.map((b) => b.calls.length)),
      syncedMs: median(r.batches.map((b) => b.syncedMs)),
      batchCpuMs: (r.batchCpuS * 1000) / r.batches.length,
      cpuS: r.cpuS,
      peakMb: r.peakRssMb,
    };
  };
  console.log(`\nhealth-sync at scale: ${containerCount} synced containers (+ consul-dataplane); ${batchCount} batches of ${batchSize} changed at once`);
  const cols = ['writes/b', 'max w/b', 'calls/b', 'synced ms', 'CPU ms/b', 'CPU s', 'peak MB'];
  console.log(`${'contender'.padEnd(32)} ${cols.map((c) => c.padStart(10)).join(' ')}`);
  for (const name of names) {
    const f = figures(name);
    const values = [f.writesPerBatch, f.maxWrites, f.callsPerBatch, f.syncedMs.toFixed(0), f.batchCpuMs.toFixed(1), f.cpuS.toFixed(2), f.peakMb.toFixed(1)];
    console.log(`${name.padEnd(32)} ${values.map((v) => String(v).padStart(10)).join(' ')}`);
  }
  if (ref && results[ref]) {
    const a = figures(ref);
    for (const name of names.filter((n) => n !== ref)) {
      const f = figures(name);
      const ratios = [f.writesPerBatch, f.maxWrites, f.callsPerBatch, f.syncedMs, f.batchCpuMs, f.cpuS, f.peakMb].map((v, i) => ratio(v, Object.values(a)[i]!));
      console.log(`${`${name.split(' ')[0]} / anchor ×`.padEnd(32)} ${ratios.map((v) => v.padStart(10)).join(' ')}`);
    }
  }
  console.log('\nConsul calls by operation over all batches:');
  for (const name of names) console.log(`  ${name}: ${JSON.stringify(countByOperation(results[name]!.batches.flatMap((b) => b.calls)))}`);
  console.log('"synced ms" is bounded by both health-syncs\' 1 s period: it says when in the period the change came.');
}
