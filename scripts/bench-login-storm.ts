// Benchmark: a login storm. N simulated ECS tasks of one service start mesh-init at
// the same moment against the same Consul cluster (3 servers) and moto (scripts/lib/login-storm.ts), ours
// (the self-contained executable) and then the anchor (hashicorp/consul-ecs), with
// the cluster cleaned up between storms (services deregistered, tokens deleted) so
// that each starts from the same state. Prints, for each: time to "initialized"
// (p50/p95/p99, from the moment all start), how many tasks joined, the Consul HTTP
// answers by status as a counting proxy in front of Consul saw them, the WARN and
// ERROR lines of the tasks' logs, and memory: the sum of the tasks' peak RSS (GNU
// time) and the peak of the machine's used memory over the storm; with ratios to
// the anchor. Not a test.
//
// --rate-limit turns Consul's request rate limits on, enforcing, low enough that
// the storm gets 429 and 503 answers (--read-rate, --write-rate per second).
//   node --import tsx scripts/bench-login-storm.ts [--tasks=N] [--servers=3] [--storms=S] [--rate-limit [--read-rate=R] [--write-rate=W]]
//     [--ours=PATH] [--anchor=PATH | --no-anchor] [--timeout=SECONDS] [--details]
// The anchor is built into the peers cache (scripts/peers.sh anchor) unless --anchor names it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { anchorBinary, median, ratio, requireGnuTime } from './lib/bench.ts';
import { LoginStormStack, percentile, type Contender, type StormResult } from './lib/login-storm.ts';

const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const tasks = Number(arg('tasks', '100'));
const servers = Number(arg('servers', '3'));
const storms = Number(arg('storms', '1'));
const rateLimited = process.argv.includes('--rate-limit');
const requestLimits = rateLimited ? { readRate: Number(arg('read-rate', '10')), writeRate: Number(arg('write-rate', '5')) } : undefined;
const timeoutMs = Number(arg('timeout', '300')) * 1000;
const details = process.argv.includes('--details');
// --ours=PATH: another build of our executable (e.g. a copy kept aside while the tree is rebuilt).
const SEA = arg('ours', '') || fileURLToPath(new URL('../packages/cli/dist/sea/consul-ecs', import.meta.url));
if (!existsSync(SEA)) throw new Error(`${SEA} is missing: run npm run build`);
if (!Number.isInteger(tasks) || tasks < 1) throw new Error(`--tasks=${arg('tasks', '')} is not a number of tasks (1 or more)`);
requireGnuTime();
const anchor = await anchorBinary();

const OURS = 'consul-ecs-ts (executable)';
const ANCHOR = 'hashicorp/consul-ecs (anchor)';
const contenders: Contender[] = [{ name: OURS, argv: [SEA], keepsLoginToken: true }];
if (anchor) contenders.push({ name: ANCHOR, argv: [anchor], keepsLoginToken: false });

const stack = await LoginStormStack.start({ tasks, servers, requestLimits });
const results: Record<string, StormResult[]> = Object.fromEntries(contenders.map((c) => [c.name, []]));
const problems: Record<string, string[]> = Object.fromEntries(contenders.map((c) => [c.name, []]));
try {
  for (let s = 0; s < storms; s++) {
    for (const contender of contenders) {
      const result = await stack.storm(contender, { peakRss: true, timeoutMs, executable: SEA });
      results[contender.name]!.push(result);
      problems[contender.name]!.push(...(await stack.problems(result)));
      await stack.cleanup();
      // Let Consul's limiter refill and the machine settle between storms.
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
} finally {
  await stack.dispose();
}

const limits = requestLimits
  ? `request rate limits enforcing (read_rate ${requestLimits.readRate}/s, write_rate ${requestLimits.writeRate}/s)`
  : 'no request rate limits';
console.log(`\nlogin storm: ${tasks} tasks start mesh-init at once, ${storms} storm(s) each, a ${servers}-server Consul cluster, ${limits}`);
interface Figures {
  joined: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  rssSumMb: number;
  machineMb: number;
  /** Median CPU time (user + system) of one task's mesh-init. */
  cpuMs: number;
  answers: Map<string, number>;
  logs: Map<string, number>;
}
const figures = (name: string): Figures => {
  const rs = results[name]!;
  const init = rs.flatMap((r) => r.runs.map((t) => t.initMs));
  const answers = new Map<string, number>();
  const logs = new Map<string, number>();
  for (const r of rs) {
    for (const [k, n] of r.httpAnswers) answers.set(k, (answers.get(k) ?? 0) + n);
    for (const [k, n] of r.logProblems) logs.set(k, (logs.get(k) ?? 0) + n);
  }
  return {
    joined: rs.reduce((n, r) => n + r.runs.filter((t) => t.exitCode === 0 && !Number.isNaN(t.initMs)).length, 0) / rs.length,
    p50: percentile(init, 50),
    p95: percentile(init, 95),
    p99: percentile(init, 99),
    max: percentile(init, 100),
    rssSumMb: median(rs.map((r) => r.runs.reduce((n, t) => n + t.peakRssKb, 0))) / 1024,
    machineMb: median(rs.map((r) => r.machineMemoryPeakKb)) / 1024,
    cpuMs: median(rs.flatMap((r) => r.runs.map((t) => t.cpuMs))),
    answers,
    logs,
  };
};
const all = Object.fromEntries(contenders.map((c) => [c.name, figures(c.name)]));
const ref = anchor ? all[ANCHOR] : undefined;
const cols = ['joined', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'ΣRSS MB', 'machine MB', 'CPU ms'];
console.log(`${'contender'.padEnd(32)} ${cols.map((c) => c.padStart(10)).join(' ')}`);
for (const c of contenders) {
  const f = all[c.name]!;
  const v = [
    `${f.joined}/${tasks}`,
    f.p50.toFixed(0),
    f.p95.toFixed(0),
    f.p99.toFixed(0),
    f.max.toFixed(0),
    f.rssSumMb.toFixed(0),
    f.machineMb.toFixed(0),
    f.cpuMs.toFixed(0),
  ];
  console.log(`${c.name.padEnd(32)} ${v.map((x) => x.padStart(10)).join(' ')}`);
}
if (ref) {
  const o = all[OURS]!;
  const r = [
    ratio(o.p50, ref.p50),
    ratio(o.p95, ref.p95),
    ratio(o.p99, ref.p99),
    ratio(o.max, ref.max),
    ratio(o.rssSumMb, ref.rssSumMb),
    ratio(o.machineMb, ref.machineMb),
    ratio(o.cpuMs, ref.cpuMs),
  ];
  console.log(`${'ours / anchor'.padEnd(32)} ${''.padStart(10)} ${r.map((x) => `${x}×`.padStart(10)).join(' ')}`);
}
console.log(
  '(time from the moment all tasks start to the "successfully initialized" line; ΣRSS: the sum of every task\'s peak RSS; machine: the peak of MemTotal − MemAvailable over the storm, less what it was before; CPU: the median of one task\'s user + system CPU time)',
);

for (const c of contenders) {
  const f = all[c.name]!;
  const byStatus = new Map<string, number>();
  for (const [k, n] of f.answers) {
    const status = k.slice(k.lastIndexOf(' ') + 1);
    byStatus.set(status, (byStatus.get(status) ?? 0) + n);
  }
  const statuses = [...byStatus].sort().map(([s, n]) => `${s}: ${n}`);
  console.log(
    `\n${c.name}: Consul HTTP answers (per storm average over ${storms}): ${statuses.map((s) => s.replace(/\d+$/, (n) => String(Math.round(Number(n) / storms)))).join(', ')}`,
  );
  const failed = [...f.answers].filter(([k]) => !/ 2\d\d$/.test(k)).sort((a, b) => b[1] - a[1]);
  for (const [k, n] of failed.slice(0, details ? 50 : 8)) console.log(`  ${String(n).padStart(6)}  ${k}`);
  const logs = [...f.logs].sort((a, b) => b[1] - a[1]);
  console.log(`  WARN/ERROR log lines: ${logs.reduce((n, [, x]) => n + x, 0)}${logs.length ? ', most frequent:' : ''}`);
  for (const [k, n] of logs.slice(0, details ? 50 : 6)) console.log(`  ${String(n).padStart(6)}  ${k}`);
  const p = problems[c.name]!;
  console.log(
    `  after the storm: ${p.length ? `${p.length} problems` : 'every task joined (service and sidecar registered, dataplane config written' + (c.keepsLoginToken ? ', its token written and known to Consul, no orphan or duplicate tokens' : ', no login token left') + ')'}`,
  );
  for (const line of p.slice(0, details ? 200 : 10)) console.log(`    ${line}`);
}
