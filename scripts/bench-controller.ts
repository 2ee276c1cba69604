// Benchmark of the controller at scale, ours against the anchor's (hashicorp/consul-ecs
// v0.10.0), each on a fresh stack with the same state: moto's ECS runs a cluster
// of N mesh tasks and Consul holds each task's login token and its service and
// sidecar instances (scripts/lib/controller-scale.ts). The controller runs under
// GNU time, talking to ECS and Consul through counting proxies
// (scripts/lib/counting-proxy.ts; in front of moto it pages ListTasks and filters
// it as ECS does, which moto does not). Its first pass finds nothing to remove;
// then half the tasks stop, and within the next two passes exactly their tokens
// and instances must be gone and every running task must keep all of its own.
// Prints, per contender, each pass's wall time (first request to last answer) and
// ECS and Consul calls, its CPU time and peak RSS, and ratios to the anchor.
//   node --import tsx scripts/bench-controller.ts [--tasks=N] [--stop=M] [--runs=R] [--anchor=PATH | --no-anchor] [--ours=PATH]
// Defaults: 1000 tasks, half of them stopped, one run. Each pass waits for the
// controllers' 10 s interval, so a run takes about a minute per contender plus seeding.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { anchorBinary, GNU_TIME, median, ratio, requireGnuTime } from './lib/bench.ts';
import { clusterConsulState, reapProblems, seedMeshTasks, stopTasks, type SeededTask } from './lib/controller-scale.ts';
import { countByOperation, CountingProxy, type ProxiedCall } from './lib/counting-proxy.ts';
import { configureIamAuthMethod, startConsulAndMoto, type MotoServer } from './lib/local-stack.ts';

const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const taskCount = Number(arg('tasks', '1000'));
const stopCount = Number(arg('stop', String(Math.floor(taskCount / 2))));
const runs = Number(arg('runs', '1'));
const SEA = fileURLToPath(new URL('../packages/cli/dist/sea/consul-ecs', import.meta.url));
const ours = arg('ours', SEA);
const anchor = await anchorBinary();
if (!(taskCount > 0 && stopCount >= 0 && stopCount <= taskCount && runs > 0))
  throw new Error('--tasks, --stop and --runs: 0 ≤ stop ≤ tasks, tasks and runs > 0');
requireGnuTime();

const CLUSTER = 'bench-scale';
const PASS_LINE = /reconcile finished|error during reconcile/;
/** What a pass calls; anything else (setting Consul up) is before the first pass. */
const PASS_OPERATIONS =
  /^(ListTasks|DescribeTasks|GET \/v1\/acl\/tokens|GET \/v1\/catalog\/node-services\/|DELETE \/v1\/acl\/token\/|PUT \/v1\/catalog\/deregister|GET \/v1\/namespaces)/;

interface PassFigures {
  wallMs: number;
  ecsCalls: number;
  consulCalls: number;
  byOperation: Record<string, number>;
}

interface RunFigures {
  seedMs: number;
  setupConsulCalls: number;
  passes: PassFigures[];
  /** Problems after the first pass (nothing should be gone) and after two more (exactly the stopped tasks' things gone). */
  afterFirst: string[];
  afterTwoMore: string[];
  /** How many stopped tasks were fully cleaned after the first pass following the stop. */
  cleanedAfterOne: number;
  cpuS: number;
  peakRssMb: number;
}

const contenders: Record<string, string> = { 'consul-ecs-ts (executable)': ours };
if (anchor) contenders['hashicorp/consul-ecs (anchor)'] = anchor;
const results: Record<string, RunFigures[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));

for (let run = 0; run < runs; run++) {
  for (const [name, binary] of Object.entries(contenders)) {
    console.error(`run ${run + 1}/${runs}: ${name}, ${taskCount} tasks`);
    results[name]!.push(await measure(binary));
  }
}
report();

async function measure(binary: string): Promise<RunFigures> {
  const [consul, moto] = await startConsulAndMoto();
  const cleanups: Array<() => Promise<void>> = [() => consul.dispose(), () => moto.dispose()];
  try {
    await configureIamAuthMethod(consul, moto);
    const clusterArn = await moto.admin.createCluster(CLUSTER);
    const sim = await controllerTask(moto);
    cleanups.push(() => sim.stop());
    const seedStart = performance.now();
    const tasks = await seedMeshTasks(consul, moto, { cluster: CLUSTER, clusterArn, count: taskCount });
    const seedMs = performance.now() - seedStart;

    const ecsProxy = await CountingProxy.start({ target: moto.url, ecs: { runningTaskArns: (cluster) => runningTaskArns(moto, cluster) } });
    const consulProxy = await CountingProxy.start({ target: consul.httpAddr });
    cleanups.push(
      () => ecsProxy.close(),
      () => consulProxy.close(),
    );

    const env = {
      ...sim.containerEnv(),
      CONSUL_ECS_CONFIG_JSON: JSON.stringify({
        bootstrapDir: '/consul',
        logLevel: 'DEBUG',
        controller: { iamRolePath: '/consul-ecs/', partitionsEnabled: false, partition: '' },
        consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: consulProxy.port }, grpc: { port: consul.ports.grpc } },
      }),
      CONSUL_HTTP_TOKEN: consul.managementToken,
      AWS_ENDPOINT_URL_ECS: ecsProxy.url,
      PATH: process.env.PATH ?? '',
    };
    const controller = startUnderGnuTime(binary, env);
    cleanups.push(async () => {
      controller.proc.kill('SIGKILL');
      await controller.proc.catch(() => {});
    });

    const stopped = everyOther(tasks, stopCount);
    const running = tasks.filter((t) => !stopped.includes(t));
    await controller.passDone(1, 60_000);
    const afterFirst = reapProblems(await clusterConsulState(consul, clusterArn), tasks, []);
    await stopTasks(moto, CLUSTER, stopped);
    const stoppedAt = controller.passEnds.length;
    await controller.passDone(stoppedAt + 1, 60_000);
    const mid = await clusterConsulState(consul, clusterArn);
    const cleanedAfterOne = stopped.filter((t) => !mid.tokens.has(t.tokenAccessor) && !mid.services.has(t.serviceId) && !mid.services.has(t.sidecarId)).length;
    await controller.passDone(stoppedAt + 2, 60_000);
    const afterTwoMore = reapProblems(await clusterConsulState(consul, clusterArn), running, stopped);
    const { cpuS, peakRssMb } = await controller.stop();

    const calls = [...ecsProxy.calls.map((c) => ({ ...c, ecs: true })), ...consulProxy.calls.map((c) => ({ ...c, ecs: false }))].sort(
      (a, b) => a.startMs - b.startMs,
    );
    const firstPassCall = calls.find((c) => PASS_OPERATIONS.test(c.operation));
    const passes: PassFigures[] = [];
    let from = firstPassCall?.startMs ?? Number.POSITIVE_INFINITY;
    for (const end of controller.passEnds) {
      passes.push(passFigures(calls.filter((c) => c.startMs >= from && c.startMs <= end)));
      from = end;
    }
    return {
      seedMs,
      setupConsulCalls: consulProxy.calls.filter((c) => c.startMs < (firstPassCall?.startMs ?? 0)).length,
      passes,
      afterFirst,
      afterTwoMore,
      cleanedAfterOne,
      cpuS,
      peakRssMb,
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

/** The controller's own task: running in the cluster, with a role that may list and describe its tasks. */
async function controllerTask(moto: MotoServer): Promise<EcsAgentSimulator> {
  const [own] = await moto.admin.runTasks(CLUSTER, 'consul-ecs-controller');
  const role = await moto.admin.createRole({
    name: 'bench-controller',
    path: '/ecs/',
    allowGetRole: false,
    allowActions: ['ecs:ListTasks', 'ecs:DescribeTasks'],
  });
  return new EcsAgentSimulator({
    family: 'consul-ecs-controller',
    cluster: CLUSTER,
    taskId: own!.taskArn!.split('/').pop()!,
    credentials: assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: role.arn }),
    containers: [{ name: 'consul-ecs-controller', hasHealthCheck: false }],
  }).start();
}

async function runningTaskArns(moto: MotoServer, cluster: string): Promise<string[]> {
  return (await moto.admin.ecs<{ taskArns?: string[] }>('ListTasks', { cluster, desiredStatus: 'RUNNING' })).taskArns ?? [];
}

/** `count` tasks spread over the list: every other one while there are enough. */
function everyOther(tasks: SeededTask[], count: number): SeededTask[] {
  const step = tasks.length / Math.max(count, 1);
  return Array.from({ length: count }, (_, i) => tasks[Math.floor(i * step)]!);
}

function passFigures(calls: Array<ProxiedCall & { ecs: boolean }>): PassFigures {
  if (!calls.length) return { wallMs: 0, ecsCalls: 0, consulCalls: 0, byOperation: {} };
  return {
    wallMs: Math.max(...calls.map((c) => c.endMs)) - Math.min(...calls.map((c) => c.startMs)),
    ecsCalls: calls.filter((c) => c.ecs).length,
    consulCalls: calls.filter((c) => !c.ecs).length,
    byOperation: countByOperation(calls),
  };
}

/** The controller under GNU time (`%U %S %M`): when each pass ended (by its log line), and its CPU time and peak RSS once stopped. */
function startUnderGnuTime(binary: string, env: Record<string, string>) {
  const proc: ResultPromise = execa(GNU_TIME, ['-f', '%U %S %M', binary, 'controller'], { env, extendEnv: false, reject: false, buffer: true });
  const passEnds: number[] = [];
  let tail = '';
  let output = '';
  const watch = (chunk: Buffer) => {
    const text = tail + chunk.toString('utf8');
    output = (output + chunk.toString('utf8')).slice(-20_000);
    const lines = text.split('\n');
    tail = lines.pop()!;
    for (const line of lines) if (PASS_LINE.test(line)) passEnds.push(performance.now());
  };
  proc.stdout!.on('data', watch);
  proc.stderr!.on('data', watch);
  let exited = false;
  void proc.then(() => (exited = true));
  return {
    proc,
    passEnds,
    async passDone(n: number, timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (passEnds.length < n) {
        if (exited || Date.now() > deadline) {
          throw new Error(
            `${binary} controller: pass ${n} did not finish ${exited ? '(it exited)' : `within ${timeoutMs} ms`}; its output ends:\n${output.slice(-3000)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    /** SIGTERM to the controller (GNU time's child), then GNU time's figures. */
    async stop(): Promise<{ cpuS: number; peakRssMb: number }> {
      const child = readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(/\s+/)[0];
      if (child) process.kill(Number(child), 'SIGTERM');
      const r = await proc;
      const last = String(r.stderr).trimEnd().split('\n').pop() ?? '';
      const [user, sys, rss] = last.trim().split(/\s+/).map(Number);
      if (![user, sys, rss].every(Number.isFinite))
        throw new Error(`${binary} controller: no figures from GNU time; its output ends:\n${String(r.stderr).slice(-2000)}`);
      return { cpuS: user! + sys!, peakRssMb: rss! / 1024 };
    },
  };
}

function report(): void {
  const names = Object.keys(contenders);
  const ref = anchor ? 'hashicorp/consul-ecs (anchor)' : undefined;
  const med = (name: string, f: (r: RunFigures) => number) => median(results[name]!.map(f));
  const figures = (name: string) => ({
    p1Ms: med(name, (r) => r.passes[0]?.wallMs ?? Number.NaN),
    p1Ecs: med(name, (r) => r.passes[0]?.ecsCalls ?? Number.NaN),
    p1Consul: med(name, (r) => r.passes[0]?.consulCalls ?? Number.NaN),
    p2Ms: med(name, (r) => r.passes[1]?.wallMs ?? Number.NaN),
    p2Ecs: med(name, (r) => r.passes[1]?.ecsCalls ?? Number.NaN),
    p2Consul: med(name, (r) => r.passes[1]?.consulCalls ?? Number.NaN),
    cpuS: med(name, (r) => r.cpuS),
    peakMb: med(name, (r) => r.peakRssMb),
  });
  console.log(`\ncontroller at scale: ${taskCount} running mesh tasks, then ${stopCount} stopped; ${runs} run(s) per contender, medians`);
  console.log('pass 1: nothing to remove; pass 2: the first after the stop (removes); CPU and peak RSS over the whole run (setup and 3 passes)');
  const cols = ['p1 ms', 'p1 ECS', 'p1 Consul', 'p2 ms', 'p2 ECS', 'p2 Consul', 'CPU s', 'peak MB'];
  console.log(`${'contender'.padEnd(32)} ${cols.map((c) => c.padStart(10)).join(' ')}`);
  for (const name of names) {
    const f = figures(name);
    const values = [f.p1Ms.toFixed(0), f.p1Ecs, f.p1Consul, f.p2Ms.toFixed(0), f.p2Ecs, f.p2Consul, f.cpuS.toFixed(2), f.peakMb.toFixed(1)];
    console.log(`${name.padEnd(32)} ${values.map((v) => String(v).padStart(10)).join(' ')}`);
  }
  if (ref) {
    for (const name of names.filter((n) => n !== ref)) {
      const f = figures(name);
      const a = figures(ref);
      const ratios = [
        ratio(f.p1Ms, a.p1Ms),
        ratio(f.p1Ecs, a.p1Ecs),
        ratio(f.p1Consul, a.p1Consul),
        ratio(f.p2Ms, a.p2Ms),
        ratio(f.p2Ecs, a.p2Ecs),
        ratio(f.p2Consul, a.p2Consul),
        ratio(f.cpuS, a.cpuS),
        ratio(f.peakMb, a.peakMb),
      ];
      console.log(`${`${name.split(' ')[0]} / anchor ×`.padEnd(32)} ${ratios.map((v) => v.padStart(10)).join(' ')}`);
    }
  } else {
    console.log('anchor: not measured (--no-anchor)');
  }
  console.log('\ncalls by operation, the last run:');
  for (const name of names) {
    const r = results[name]!.at(-1)!;
    r.passes.slice(0, 3).forEach((p, i) => console.log(`  ${name}, pass ${i + 1}: ${JSON.stringify(p.byOperation)}`));
    console.log(`  ${name}: setup ${r.setupConsulCalls} Consul calls; seeding took ${(r.seedMs / 1000).toFixed(1)} s`);
  }
  console.log('\ncorrectness (every run):');
  let failed = false;
  for (const name of names) {
    for (const [i, r] of results[name]!.entries()) {
      const ok = !r.afterFirst.length && !r.afterTwoMore.length;
      failed ||= !ok;
      console.log(
        `  ${name}, run ${i + 1}: ${ok ? 'ok' : 'WRONG'}: after pass 1 ${r.afterFirst.length} problem(s); ${r.cleanedAfterOne}/${stopCount} stopped tasks cleaned after one pass, ` +
          `${r.afterTwoMore.length} problem(s) after two${r.afterTwoMore.length ? `: ${r.afterTwoMore.slice(0, 3).join('; ')}${r.afterTwoMore.length > 3 ? '; …' : ''}` : ''}`,
      );
      if (r.afterFirst.length) console.log(`    after pass 1: ${r.afterFirst.slice(0, 3).join('; ')}`);
    }
  }
  if (failed) process.exitCode = 1;
}
