// Benchmark: our `consul-ecs login` against the real Go `consul login -type aws-iam
// -aws-auto-bearer-token -aws-include-entity`, alternating, against the same
// local stack (Consul + moto + the ECS agent simulator). Prints the median wall
// time and peak RSS of each and the ratios. Not a test: it only prints figures.
//   node --import tsx scripts/bench-login.ts [--runs=N] [--also=PATH]
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './lib/aws-admin.ts';
import { configureIamAuthMethod, peerBinary, startConsulAndMoto } from './lib/local-stack.ts';
import { commandLine, median, peakRssKb, ratio, requireGnuTime } from './lib/bench.ts';
import { canDropPageCache, dropPageCache } from './lib/page-cache.ts';

const CLI = fileURLToPath(new URL('../packages/cli/bin/consul-ecs.cjs', import.meta.url));
const sea = fileURLToPath(new URL('../packages/cli/dist/sea/consul-ecs', import.meta.url));
if (!existsSync(sea)) throw new Error(`${sea} is missing: run npm run build (npm run bench:login does)`);
const runs = Number(process.argv.find((a) => a.startsWith('--runs='))?.split('=')[1] ?? 15);
// Another build of our executable (e.g. one kept from before a change), as a contender of its own.
const also = process.argv.find((a) => a.startsWith('--also='))?.slice('--also='.length);
requireGnuTime();
const ltsNode = execFileSync('bash', [fileURLToPath(new URL('./runtime.sh', import.meta.url))], { encoding: 'utf8' }).trim();

const [consul, moto] = await startConsulAndMoto();
const dir = await mkdtemp(join(tmpdir(), 'bench-login-'));
const SERVER_ID = 'consul.bench.local';
let sim: EcsAgentSimulator | undefined;
try {
  await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID });
  const role = await moto.admin.createRole({ name: 'bench-task', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } });
  sim = await new EcsAgentSimulator({
    family: 'web',
    credentials: assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: role.arn }),
  }).start();
  const sink = join(dir, 'token');
  const common = [
    '-http-addr',
    consul.httpAddr,
    '-aws-sts-endpoint',
    moto.url,
    '-aws-iam-endpoint',
    moto.url,
    '-aws-server-id-header-value',
    SERVER_ID,
    '-token-sink-file',
    sink,
  ];
  const meta = ['-meta', `consul.hashicorp.com/task-id=${sim.taskId}`, '-meta', `consul.hashicorp.com/cluster=${sim.clusterArn}`];
  // Ours gets the same inputs as the Go CLI (region and task meta as flags); the
  // last row of ours reads them from the task's metadata, as a task would by default.
  const same = [...common, '-aws-region', sim.region, ...meta];
  const contenders: Record<string, string[]> = {
    'consul-ecs login (executable)': [sea, 'login', ...same],
    [`consul-ecs login (node ${process.version})`]: [process.execPath, CLI, 'login', ...same],
    [`consul-ecs login (node ${execFileSync(ltsNode, ['--version'], { encoding: 'utf8' }).trim()} LTS)`]: [ltsNode, CLI, 'login', ...same],
    'consul-ecs login (executable, task metadata)': [sea, 'login', ...common],
    ...(also ? { [`consul-ecs login (executable at ${also})`]: [also, 'login', ...same] } : {}),
    'consul login -type aws-iam (Go)': [
      peerBinary('consul'),
      'login',
      '-type',
      'aws-iam',
      '-method',
      'iam-ecs-service-token',
      '-aws-auto-bearer-token',
      '-aws-include-entity',
      '-aws-region',
      sim.region,
      ...common,
      ...meta,
    ],
  };
  const samples: Record<string, Array<{ ms: number; rssKb: number }>> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));

  // As a container's first run reads its binary (see lib/page-cache.ts).
  const dropped = canDropPageCache();
  if (dropped) dropPageCache();
  for (let i = 0; i < runs + 1; i++) {
    for (const [name, argv] of Object.entries(contenders)) {
      // Wall time by the clock here (GNU time's %e counts in 10 ms steps), on a run of
      // its own; peak RSS by GNU time, on a second run: GNU time delays what it runs by
      // a few ms, and not the same for every contender.
      const runOnce = async (underGnuTime: boolean) => {
        const started = process.hrtime.bigint();
        const [file, args] = commandLine(argv, { peakRss: underGnuTime });
        const r = await execa(file, args, { env: { ...sim!.containerEnv(), PATH: process.env.PATH ?? '' }, extendEnv: false, reject: false });
        const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
        if (r.exitCode !== 0) throw new Error(`${name} failed: ${r.stderr}`);
        const token = (await readFile(sink, 'utf8')).trim();
        await consul.client().send({ method: 'POST', path: '/v1/acl/logout', token });
        return { elapsedMs, stderr: r.stderr };
      };
      const { elapsedMs } = await runOnce(false);
      const { stderr } = await runOnce(true);
      if (i === 0) continue; // warm-up round
      samples[name]!.push({ ms: elapsedMs, rssKb: peakRssKb(stderr) });
    }
  }

  const go = 'consul login -type aws-iam (Go)';
  const goMs = median(samples[go]!.map((s) => s.ms));
  const goRss = median(samples[go]!.map((s) => s.rssKb));
  console.log(`\nlogin benchmark: ${runs} runs each, alternating, same Consul ${consul.httpAddr} and moto ${moto.url}`);
  console.log(`page cache ${dropped ? 'dropped before the first run' : 'left as it is (RSS includes whatever file pages it holds)'}`);
  console.log(
    `${'contender'.padEnd(44)} ${'median ms'.padStart(10)} ${'peak RSS MB'.padStart(12)} ${'time ratio'.padStart(11)} ${'paired Δ ms'.padStart(12)} ${'RSS ratio'.padStart(10)}`,
  );
  for (const [name, s] of Object.entries(samples)) {
    const ms = median(s.map((x) => x.ms));
    const rss = median(s.map((x) => x.rssKb));
    // Each round runs every contender once, so a round's difference cancels the machine's drift.
    const paired = median(s.map((x, round) => x.ms - samples[go]![round]!.ms));
    console.log(
      `${name.padEnd(44)} ${ms.toFixed(0).padStart(10)} ${(rss / 1024).toFixed(1).padStart(12)} ${ratio(ms, goMs).padStart(11)} ${`${paired > 0 ? '+' : ''}${paired.toFixed(1)}`.padStart(12)} ${ratio(rss, goRss).padStart(10)}`,
    );
  }
  console.log(
    "(ratios are ours / Go; paired Δ is the median over rounds of ours minus Go's in the same round; our login also waits until the token reads back with stale consistency before writing it)",
  );
} finally {
  await sim?.stop();
  await Promise.all([consul.dispose(), moto.dispose()]);
  await rm(dir, { recursive: true, force: true });
}
