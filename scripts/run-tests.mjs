#!/usr/bin/env node
// Runs the test suite with node:test on each runtime we support: the machine's
// Node.js and the pinned LTS that the images and the executable embed.
// Usage: node scripts/run-tests.mjs [--runtime=machine|lts|all] [--unit|--integration] [files…]
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, def) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const runtimeChoice = opt('runtime', process.env.CONSUL_ECS_TEST_RUNTIMES ?? 'all');
const only = argv.includes('--unit') ? 'unit' : argv.includes('--integration') ? 'integration' : undefined;
const explicit = argv.filter((a) => !a.startsWith('--'));

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const files = explicit.length
  ? explicit
  : [...(only !== 'integration' ? find(join(root, 'test/unit')) : []), ...(only !== 'unit' ? find(join(root, 'test/integration')) : [])];

const runtimes = [];
if (runtimeChoice === 'machine' || runtimeChoice === 'all') runtimes.push({ name: `machine node ${process.version}`, node: process.execPath });
if (runtimeChoice === 'lts' || runtimeChoice === 'all') {
  const node = execFileSync('bash', [join(root, 'scripts/runtime.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  runtimes.push({ name: `LTS node ${version}`, node });
}

// A run of every file on one runtime may take this long; past it the run is stopped and fails
// (a test leaving a process or a socket behind would otherwise hold CI until its own limit).
// Not --test-force-exit: on Node.js 24 it can end the run before the last results of a file
// arrive, and those tests then vanish from the report without failing.
const RUN_LIMIT_MS = 40 * 60_000;

let passed = 0;
let failed = 0;
const testsPerRuntime = new Map();
for (const rt of runtimes) {
  process.stdout.write(`\n=== ${rt.name}: ${files.length} test files ===\n`);
  const counts = await new Promise((resolve) => {
    const child = spawn(
      rt.node,
      ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=180000', ...files.map((f) => relative(root, f))],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FORCE_COLOR: '0' } },
    );
    let out = '';
    const limit = setTimeout(() => {
      process.stdout.write(`\n=== ${rt.name}: still running after ${RUN_LIMIT_MS / 60_000} minutes; stopping it ===\n`);
      child.kill('SIGKILL');
    }, RUN_LIMIT_MS);
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.on('close', (code) => {
      clearTimeout(limit);
      const num = (k) => Number([...out.matchAll(new RegExp(`^ℹ ${k} (\\d+)$`, 'gm'))].at(-1)?.[1] ?? 0);
      const pass = num('pass');
      let fail = num('fail') + num('cancelled');
      if (code !== 0 && fail === 0) fail = 1;
      resolve({ pass, fail, tests: num('tests') });
    });
  });
  process.stdout.write(`=== ${rt.name}: ${counts.pass} passed, ${counts.fail} failed ===\n`);
  passed += counts.pass;
  failed += counts.fail;
  testsPerRuntime.set(rt.name, counts.tests);
}
// Every runtime runs the same files: a different number of tests means results were lost.
if (new Set(testsPerRuntime.values()).size > 1) {
  const reported = [...testsPerRuntime].map(([name, tests]) => `${name}: ${tests}`).join(', ');
  process.stdout.write(`\nthe runtimes reported different numbers of tests (${reported}): some results were lost\n`);
  failed += 1;
}
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
