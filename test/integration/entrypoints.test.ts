// envoy-entrypoint and app-entrypoint as ECS runs them: the real CLI (the
// bundle on this Node.js, and the self-contained executable with no Node.js on
// PATH) supervising a shell that reports the signals it gets, in a task served
// by the ECS agent simulator. Every wait is bounded.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';

const CLI = fileURLToPath(new URL('../../packages/cli/bin/consul-ecs.cjs', import.meta.url));
const SEA = fileURLToPath(new URL('../../packages/cli/dist/sea/consul-ecs', import.meta.url));

/**
 * A long-running "app" that prints `ready <pid>` and one line for each signal
 * it gets: SIGTERM exits 7, SIGINT exits 8, SIGHUP/SIGUSR1/SIGUSR2 are only
 * reported. It sets its own PATH, as the entrypoint's may be /nonexistent.
 */
const TRAPS = [
  'PATH=/usr/bin:/bin',
  'trap "echo got TERM; exit 7" TERM',
  'trap "echo got INT; exit 8" INT',
  'trap "echo got HUP" HUP',
  'trap "echo got USR1" USR1',
  'trap "echo got USR2" USR2',
  'echo ready $$',
  'while :; do sleep 0.05; done',
].join('; ');

interface Run {
  proc: ChildProcess;
  /** stdout (the app's lines) and stderr (the entrypoint's log). */
  out(): string;
  err(): string;
  /** The app's pid, from its `ready` line. */
  appPid(): number;
  waitFor(re: RegExp, ms: number): Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  running(): boolean;
  kill(): void;
}

const runs = new Set<Run>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ms: number, check: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const variants = [
  { name: 'bundle on this Node.js', file: process.execPath, pre: [CLI], path: process.env.PATH ?? '/usr/bin:/bin' },
  { name: 'self-contained executable, PATH=/nonexistent', file: SEA, pre: [] as string[], path: '/nonexistent' },
];

for (const v of variants) {
  describe(`entrypoints (${v.name})`, () => {
    let sim: EcsAgentSimulator;

    function run(args: string[], env: Record<string, string> = {}): Run {
      const proc = spawn(v.file, [...v.pre, ...args], {
        env: { ...sim.containerEnv(), PATH: v.path, HOME: process.env.HOME ?? '/tmp', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      proc.stdout!.on('data', (d) => (out += d));
      proc.stderr!.on('data', (d) => (err += d));
      let exited = false;
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
        proc.once('exit', (code, signal) => {
          exited = true;
          resolve({ code, signal, at: Date.now() });
        }),
      );
      const r: Run = {
        proc,
        out: () => out,
        err: () => err,
        appPid: () => Number(/^ready (\d+)$/m.exec(out)?.[1] ?? NaN),
        waitFor: (re, ms) => until(`${re} in the output\nstdout: ${out}\nstderr: ${err}`, ms, () => re.test(out) || re.test(err)),
        exit,
        running: () => !exited,
        kill: () => {
          const app = r.appPid();
          if (Number.isInteger(app) && alive(app)) {
            try {
              process.kill(-app, 'SIGKILL');
            } catch {
              // gone already
            }
          }
          if (!exited) proc.kill('SIGKILL');
        },
      };
      runs.add(r);
      return r;
    }

    before(async () => {
      assert.ok(existsSync(SEA), `${SEA} is missing: run npm run build`);
      sim = await new EcsAgentSimulator({
        containers: [
          { name: 'consul-ecs-control-plane', hasHealthCheck: true },
          { name: 'consul-dataplane', hasHealthCheck: true },
          { name: 'app', hasHealthCheck: true },
          { name: 'worker' },
          { name: 'ecs-managed', type: 'AWS MANAGED' },
        ],
      }).start();
    });
    after(async () => {
      for (const r of runs) r.kill();
      runs.clear();
      await sim.stop();
    });
    const reset = () => {
      for (const name of ['consul-ecs-control-plane', 'consul-dataplane', 'app', 'worker']) sim.setStatus(name, 'RUNNING');
      sim.failMetadata(undefined);
    };

    it('envoy-entrypoint keeps the command through SIGTERM until the app containers stop, then SIGTERMs it; the exit code propagates', async () => {
      reset();
      const r = run(['envoy-entrypoint', '/bin/sh', '-c', TRAPS]);
      try {
        await r.waitFor(/^ready \d+$/m, 10_000);
        sim.failMetadata(500);
        const hits = sim.hits.task;
        r.proc.kill('SIGTERM');
        await r.waitFor(/\[ERROR\] fetching task metadata: .*HTTP 500/, 5000);
        sim.failMetadata(undefined);
        await until('two successful polls', 5000, () => sim.hits.task >= hits + 3);
        sim.stopContainer('app'); // the worker still runs
        const polled = sim.hits.task;
        await until('another poll', 5000, () => sim.hits.task >= polled + 2);
        r.proc.kill('SIGTERM'); // a second SIGTERM is ignored too
        await new Promise((res) => setTimeout(res, 200));
        assert.ok(r.running(), 'the entrypoint still runs');
        assert.ok(alive(r.appPid()), 'the command still runs');
        assert.doesNotMatch(r.out(), /got TERM/);
        const stoppedAt = Date.now();
        sim.stopContainer('worker');
        const { code, at } = await r.exit;
        assert.equal(code, 7, r.err());
        assert.match(r.out(), /got TERM/);
        assert.ok(at - stoppedAt < 2500, `stopped ${at - stoppedAt} ms after the last app container stopped (polls every second)`);
        assert.match(r.err(), /waiting for the application container\(s\) to stop/);
        assert.match(r.err(), /application container\(s\) have stopped; sending SIGTERM to the command/);
        assert.doesNotMatch(r.err(), /Debugger listening/);
      } finally {
        r.kill();
      }
    });

    it('envoy-entrypoint forwards SIGHUP, SIGUSR1, SIGUSR2 and SIGINT to the command', async () => {
      reset();
      const r = run(['envoy-entrypoint', '/bin/sh', '-c', TRAPS]);
      try {
        await r.waitFor(/^ready \d+$/m, 10_000);
        for (const [sig, line] of [
          ['SIGHUP', /^got HUP$/m],
          ['SIGUSR1', /^got USR1$/m],
          ['SIGUSR2', /^got USR2$/m],
        ] as const) {
          r.proc.kill(sig);
          await r.waitFor(line, 3000);
        }
        assert.ok(r.running());
        r.proc.kill('SIGINT');
        const { code } = await r.exit;
        assert.equal(code, 8);
        assert.match(r.out(), /^got INT$/m);
        assert.doesNotMatch(r.err(), /Debugger listening/, 'SIGUSR1 did not open the Node.js inspector');
      } finally {
        r.kill();
      }
    });

    it("envoy-entrypoint ends with the command's code when it exits first, also after SIGTERM", async () => {
      reset();
      const quick = run(['envoy-entrypoint', '/bin/sh', '-c', 'exit 5']);
      assert.equal((await quick.exit).code, 5);
      const killed = run(['envoy-entrypoint', '/bin/sh', '-c', 'kill -KILL $$']);
      assert.equal((await killed.exit).code, 137);

      const r = run(['envoy-entrypoint', '/bin/sh', '-c', TRAPS]);
      try {
        await r.waitFor(/^ready \d+$/m, 10_000);
        r.proc.kill('SIGTERM');
        await r.waitFor(/waiting for the application container/, 5000);
        const t0 = Date.now();
        process.kill(r.appPid(), 'SIGKILL');
        const { code, at } = await r.exit;
        assert.equal(code, 137);
        assert.ok(at - t0 < 1000, `exited ${at - t0} ms after the command`);
      } finally {
        r.kill();
      }
    });

    it('app-entrypoint waits the shutdown delay after SIGTERM, forwarding other signals, then SIGTERMs the app', async () => {
      const r = run(['app-entrypoint', '-shutdown-delay', '1500ms', '/bin/sh', '-c', TRAPS]);
      try {
        await r.waitFor(/^ready \d+$/m, 10_000);
        const t0 = Date.now();
        r.proc.kill('SIGTERM');
        await r.waitFor(/waiting 1.5s before terminating the application/, 1000);
        r.proc.kill('SIGHUP');
        await r.waitFor(/^got HUP$/m, 1000);
        assert.doesNotMatch(r.out(), /got TERM/);
        await r.waitFor(/^got TERM$/m, 4000);
        const elapsed = Date.now() - t0;
        const { code } = await r.exit;
        assert.equal(code, 7);
        assert.ok(elapsed >= 1400 && elapsed < 3000, `the app got SIGTERM ${elapsed} ms after the entrypoint`);
      } finally {
        r.kill();
      }
    });

    it('app-entrypoint returns as soon as the app exits during the delay', async () => {
      const script = 'PATH=/usr/bin:/bin; trap "echo got TERM" TERM; echo ready $$; i=0; while [ $i -lt 8 ]; do sleep 0.1; i=$((i+1)); done; exit 4';
      const r = run(['app-entrypoint', '-shutdown-delay=30s', '--', '/bin/sh', '-c', script]);
      try {
        await r.waitFor(/^ready \d+$/m, 10_000);
        const t0 = Date.now();
        r.proc.kill('SIGTERM');
        const { code, at } = await r.exit;
        assert.equal(code, 4);
        assert.ok(at - t0 < 2000, `returned ${at - t0} ms after SIGTERM, not after the 30s delay`);
        assert.doesNotMatch(r.out(), /got TERM/);
      } finally {
        r.kill();
      }
    });

    it('app-entrypoint without a delay SIGTERMs the app at once; exit codes propagate', async () => {
      const r = run(['app-entrypoint', '/bin/sh', '-c', TRAPS]);
      try {
        await r.waitFor(/^ready \d+$/m, 10_000);
        const t0 = Date.now();
        r.proc.kill('SIGTERM');
        const { code, at } = await r.exit;
        assert.equal(code, 7);
        assert.ok(at - t0 < 1000);
      } finally {
        r.kill();
      }
      assert.equal((await run(['app-entrypoint', '/bin/sh', '-c', 'exit 0']).exit).code, 0);
      assert.equal((await run(['app-entrypoint', '-shutdown-delay', '1s', '/bin/sh', '-c', 'exit 42']).exit).code, 42);
      assert.equal((await run(['app-entrypoint', '/bin/sh', '-c', 'kill -TERM $$']).exit).code, 143);
    });

    it('usage errors and commands that cannot start exit 1', async () => {
      for (const args of [['envoy-entrypoint'], ['app-entrypoint'], ['app-entrypoint', '-shutdown-delay', '5s']]) {
        const r = run(args);
        assert.equal((await r.exit).code, 1, args.join(' '));
        assert.match(r.err(), /command is required/);
      }
      const bad = run(['app-entrypoint', '-shutdown-delay', 'asdf', '/bin/true']);
      assert.equal((await bad.exit).code, 1);
      assert.match(bad.err(), /invalid value "asdf" for flag -shutdown-delay/);
      for (const [ep, cmd, why] of [
        ['envoy-entrypoint', 'envoy', /cannot start the command envoy: executable file not found in PATH/],
        ['app-entrypoint', '/nonexistent/app', /cannot start the command \/nonexistent\/app: executable file not found/],
        ['app-entrypoint', '/etc/passwd', /cannot start the command \/etc\/passwd: permission denied/],
      ] as const) {
        const r = run([ep, cmd]);
        assert.equal((await r.exit).code, 1, `${ep} ${cmd}`);
        assert.match(r.err(), why);
      }
    });
  });
}

describe('self-contained executable: V8 code caches', () => {
  it('takes the code cache made at build time for each command (the default one for the long-running commands)', () => {
    assert.ok(existsSync(SEA), `${SEA} is missing: run npm run build`);
    const expected: Array<[string[], string]> = [
      [['version'], 'version'],
      [['login', '-help'], 'login'],
      [['logout', '-help'], 'logout'],
      [['mesh-init', '-help'], 'mesh-init'],
      [['net-dial', '-help'], 'net-dial'],
      [['health-sync', '-help'], 'version'],
      [['control-plane', '-help'], 'version'],
      [['no-such-command'], 'version'],
    ];
    for (const [args, cache] of expected) {
      const r = spawnSync(SEA, args, { encoding: 'utf8', env: { PATH: '/nonexistent', CONSUL_ECS_CODE_CACHE_CHECK: '1' }, timeout: 10_000 });
      assert.match(r.stderr, new RegExp(`^code cache ${cache}: accepted$`, 'm'), `${args.join(' ')}: ${r.stderr}`);
    }
  });
});
