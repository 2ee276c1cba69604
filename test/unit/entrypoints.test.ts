// The entrypoints' pieces without processes: Go durations, the stop rule over
// task documents, usage errors through the CLI, and the signal handling of
// envoy-entrypoint and app-entrypoint driven by a fake child, fake signals and
// a fake clock.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { createLogger, type Clock, type EcsContainerMetadata, type EcsTaskMetadata } from '@consul-ecs-ts/core';
import { commands, runCli } from '@consul-ecs-ts/cli';
import {
  appContainersStopped,
  exitCodeOf,
  formatGoDuration,
  isAppContainer,
  NON_APP_CONTAINERS,
  parseGoDuration,
  runAppEntrypoint,
  runEnvoyEntrypoint,
  runningAppContainers,
  type ChildExit,
  type RunningChild,
  type SignalSource,
  type Spawner,
} from '@consul-ecs-ts/entrypoints';
import { captureOutput } from '../helpers/capture.ts';
import { fakeClock } from '../helpers/fake-clock.ts';

const container = (Name: string, over: Partial<EcsContainerMetadata> = {}): EcsContainerMetadata => ({
  Name,
  Type: 'NORMAL',
  DesiredStatus: 'RUNNING',
  KnownStatus: 'RUNNING',
  ...over,
});
const stopped = { DesiredStatus: 'STOPPED', KnownStatus: 'STOPPED' };
const taskDoc = (...Containers: EcsContainerMetadata[]): EcsTaskMetadata => ({
  Cluster: 'c',
  TaskARN: 'arn:aws:ecs:us-east-1:123456789012:task/c/0123',
  Family: 'f',
  Containers,
});

/** A child that records the signals sent to it and exits when told to. */
function fakeChild(pid = 4242) {
  const sent: Array<{ to: 'pid' | 'group'; signal: NodeJS.Signals }> = [];
  let exit!: (e: ChildExit) => void;
  const exited = new Promise<ChildExit>((resolve) => (exit = resolve));
  const child: RunningChild = {
    pid,
    kill: (signal) => void sent.push({ to: 'pid', signal }),
    killGroup: (signal) => void sent.push({ to: 'group', signal }),
    exited,
  };
  const started: Array<readonly string[]> = [];
  const spawn: Spawner = async (command) => {
    started.push(command);
    return child;
  };
  return { child, sent, spawn, started, exit: (code: number, signal?: NodeJS.Signals) => exit(signal ? { code, signal } : { code, exitCode: code }) };
}

/** Signals the test emits by name. */
function fakeSignals(): SignalSource & { emit(sig: NodeJS.Signals): void; count(): number } {
  const ee = new EventEmitter();
  return {
    on: (s, l) => ee.on(s, l),
    off: (s, l) => ee.off(s, l),
    emit: (s) => void ee.emit(s, s),
    count: () => ee.eventNames().reduce((n, e) => n + ee.listenerCount(e), 0),
  };
}

/** Lets pending promise callbacks and immediates run. */
const settle = async (rounds = 5) => {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
};

/** A clock whose sleeps wait until the test releases them (or the sleep is aborted). */
function manualClock(): Clock & { pending: number[]; release(): void } {
  const waiting: Array<{ ms: number; resolve: () => void }> = [];
  return {
    now: () => 0,
    get pending() {
      return waiting.map((w) => w.ms);
    },
    release: () => {
      for (const w of waiting.splice(0)) w.resolve();
    },
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const entry = { ms, resolve };
        waiting.push(entry);
        signal?.addEventListener('abort', () => {
          waiting.splice(waiting.indexOf(entry), 1);
          reject(signal.reason);
        });
      }),
  };
}

function logs() {
  let text = '';
  return { logger: createLogger({ level: 'debug', write: (l) => void (text += l) }), text: () => text };
}

describe('Go durations', () => {
  it('parses what time.ParseDuration parses, into milliseconds', () => {
    const cases: Array<[string, number]> = [
      ['0', 0],
      ['+0', 0],
      ['0s', 0],
      ['10s', 10_000],
      ['1m30s', 90_000],
      ['500ms', 500],
      ['1.5h', 5_400_000],
      ['1h30m', 5_400_000],
      ['.5s', 500],
      ['1.s', 1000],
      ['100us', 0.1],
      ['100µs', 0.1],
      ['100μs', 0.1],
      ['2000000ns', 2],
      ['-1s', -1000],
      ['+2m', 120_000],
      ['1h2m3s4ms', 3_723_004],
    ];
    for (const [text, ms] of cases) assert.equal(parseGoDuration(text), ms, text);
  });

  it("rejects what Go rejects, in Go's words", () => {
    const cases: Array<[string, RegExp]> = [
      ['', /^time: invalid duration ""$/],
      ['asdf', /^time: invalid duration "asdf"$/],
      ['10', /^time: missing unit in duration "10"$/],
      ['1s2', /^time: missing unit in duration "1s2"$/],
      ['s', /^time: invalid duration "s"$/],
      ['.s', /^time: invalid duration ".s"$/],
      ['1x', /^time: unknown unit "x" in duration "1x"$/],
      ['1 s', /^time: unknown unit " s" in duration "1 s"$/],
      ['--1s', /^time: invalid duration "--1s"$/],
      ['99999999999999h', /^time: invalid duration/],
    ];
    for (const [text, re] of cases) assert.throws(() => parseGoDuration(text), { message: re }, text);
  });

  it('prints durations as Go does', () => {
    assert.equal(formatGoDuration(0), '0s');
    assert.equal(formatGoDuration(500), '500ms');
    assert.equal(formatGoDuration(10_000), '10s');
    assert.equal(formatGoDuration(90_000), '1m30s');
    assert.equal(formatGoDuration(3_600_000), '1h0m0s');
    assert.equal(formatGoDuration(1500), '1.5s');
  });
});

describe('the stop rule over task documents', () => {
  it('waits for NORMAL containers other than the Consul ones, until both statuses are STOPPED', () => {
    const consul = NON_APP_CONTAINERS.map((n) => container(n));
    assert.deepEqual([...NON_APP_CONTAINERS].sort(), ['consul-dataplane', 'consul-ecs-control-plane', 'consul-ecs-health-sync', 'consul-ecs-mesh-init']);
    assert.equal(appContainersStopped(taskDoc(...consul, container('app'))), false);
    assert.deepEqual(runningAppContainers(taskDoc(...consul, container('app'), container('worker', stopped))), ['app']);
    // Desired STOPPED but still running: not stopped yet.
    assert.equal(appContainersStopped(taskDoc(container('app', { DesiredStatus: 'STOPPED' }))), false);
    assert.equal(appContainersStopped(taskDoc(container('app', { KnownStatus: 'STOPPED' }))), false);
    assert.equal(appContainersStopped(taskDoc(...consul, container('app', stopped), container('worker', stopped))), true);
  });

  it('ignores containers ECS adds (not NORMAL) and tasks without applications', () => {
    assert.equal(isAppContainer(container('some-aws-managed-container', { Type: 'AWS MANAGED' })), false);
    assert.equal(isAppContainer({ Name: 'no-type' }), false);
    assert.equal(appContainersStopped(taskDoc(container('x', { Type: 'AWS MANAGED' }), container('app', stopped))), true);
    assert.equal(appContainersStopped(taskDoc(...NON_APP_CONTAINERS.map((n) => container(n)))), true);
    assert.equal(appContainersStopped(taskDoc()), true);
  });

  it('takes a different list of non-application containers', () => {
    assert.equal(appContainersStopped(taskDoc(container('sidecar'), container('app', stopped)), ['sidecar']), true);
  });
});

describe('exit codes', () => {
  it("is the command's code, or 128 + the signal number", () => {
    assert.equal(exitCodeOf(0, undefined), 0);
    assert.equal(exitCodeOf(7, null), 7);
    assert.equal(exitCodeOf(undefined, 'SIGTERM'), 143);
    assert.equal(exitCodeOf(null, 'SIGKILL'), 137);
    assert.equal(exitCodeOf(undefined, undefined), 1);
  });
});

describe('entrypoint usage', () => {
  const run = async (argv: string[]) => {
    const io = captureOutput();
    const code = await runCli(argv, { env: {}, stdout: io.stdout, stderr: io.stderr, signal: new AbortController().signal });
    return { code, ...io };
  };

  it('without a command: usage on stderr, exit 1', async () => {
    for (const argv of [['envoy-entrypoint'], ['app-entrypoint'], ['app-entrypoint', '-shutdown-delay', '10s'], ['app-entrypoint', '--']]) {
      const r = await run(argv);
      assert.equal(r.code, 1, argv.join(' '));
      assert.match(r.err(), /^command is required\n\nUsage: consul-ecs /, argv.join(' '));
      assert.equal(r.out(), '');
    }
  });

  it('a bad -shutdown-delay or an unknown flag: usage error, exit 1', async () => {
    let r = await run(['app-entrypoint', '-shutdown-delay', 'asdf', '/bin/true']);
    assert.equal(r.code, 1);
    assert.match(r.err(), /^invalid value "asdf" for flag -shutdown-delay: time: invalid duration "asdf"\n\nUsage: consul-ecs app-entrypoint/);
    r = await run(['app-entrypoint', '-shutdown-delay=10', '/bin/true']);
    assert.equal(r.code, 1);
    assert.match(r.err(), /missing unit in duration "10"/);
    r = await run(['app-entrypoint', '-shutdown-delay']);
    assert.equal(r.code, 1);
    assert.match(r.err(), /flag needs an argument: -shutdown-delay/);
    r = await run(['envoy-entrypoint', '-bogus', 'envoy']);
    assert.equal(r.code, 1);
    assert.match(r.err(), /flag provided but not defined: -bogus/);
  });

  it('-help prints the flags on stdout, exit 0', async () => {
    const r = await run(['app-entrypoint', '-shutdown-delay', '1s', '-help']);
    assert.equal(r.code, 0);
    assert.match(r.out(), /-shutdown-delay <string>/);
    const e = await run(['envoy-entrypoint', '-h']);
    assert.equal(e.code, 0);
    assert.match(e.out(), /Usage: consul-ecs envoy-entrypoint/);
  });

  it('only the entrypoints own their signals', () => {
    assert.deepEqual(
      commands.filter((c) => c.ownsSignals).map((c) => c.name),
      ['envoy-entrypoint', 'app-entrypoint'],
    );
  });
});

describe('envoy-entrypoint with a fake child', () => {
  it('ignores SIGTERM until the application containers stop, then SIGTERMs the group; forwards other signals', async () => {
    const c = fakeChild();
    const signals = fakeSignals();
    const clock = manualClock();
    const docs = [
      taskDoc(container('consul-dataplane'), container('app')),
      new Error('connect ECONNREFUSED'),
      taskDoc(container('consul-dataplane'), container('app', stopped)),
    ];
    let polls = 0;
    const log = logs();
    const done = runEnvoyEntrypoint({
      command: ['envoy', '-c', 'x'],
      spawn: c.spawn,
      signals,
      clock,
      logger: log.logger,
      taskMetadata: async () => {
        const d = docs[Math.min(polls++, docs.length - 1)]!;
        if (d instanceof Error) throw d;
        return d;
      },
    });
    await settle();
    assert.deepEqual(c.started, [['envoy', '-c', 'x']]);
    signals.emit('SIGINT');
    signals.emit('SIGHUP');
    assert.deepEqual(c.sent, [
      { to: 'pid', signal: 'SIGINT' },
      { to: 'pid', signal: 'SIGHUP' },
    ]);
    assert.equal(polls, 0, 'no polling before SIGTERM');
    signals.emit('SIGTERM');
    await settle();
    assert.equal(polls, 1, 'polls at once on SIGTERM');
    assert.deepEqual(clock.pending, [1000]);
    signals.emit('SIGTERM'); // ignored, not forwarded, and no second poller
    clock.release();
    await settle();
    assert.equal(polls, 2);
    assert.match(log.text(), /\[ERROR\] fetching task metadata: error=.*ECONNREFUSED/);
    assert.equal(c.sent.length, 2, 'nothing sent while the app runs');
    clock.release();
    await settle();
    assert.equal(polls, 3);
    assert.deepEqual(c.sent.at(-1), { to: 'group', signal: 'SIGTERM' });
    c.exit(143, 'SIGTERM');
    assert.equal(await done, 143);
    assert.equal(signals.count(), 0, 'listeners removed');
  });

  it("ends with the child's code at once when the child exits first, even while polling", async () => {
    const c = fakeChild();
    const signals = fakeSignals();
    const clock = manualClock();
    const done = runEnvoyEntrypoint({
      command: ['envoy'],
      spawn: c.spawn,
      signals,
      clock,
      taskMetadata: async () => taskDoc(container('app')),
    });
    await settle();
    signals.emit('SIGTERM');
    await settle();
    assert.deepEqual(clock.pending, [1000]);
    c.exit(3);
    assert.equal(await done, 3);
    await settle();
    assert.deepEqual(clock.pending, [], 'the poller stopped');
    assert.equal(signals.count(), 0);
  });

  it('rejects when the command cannot start, and removes its listeners', async () => {
    const signals = fakeSignals();
    await assert.rejects(
      runEnvoyEntrypoint({
        command: ['nope'],
        signals,
        spawn: async () => {
          throw new Error('cannot start');
        },
        taskMetadata: async () => taskDoc(),
      }),
      /cannot start/,
    );
    assert.equal(signals.count(), 0);
    await assert.rejects(runEnvoyEntrypoint({ command: [], signals, taskMetadata: async () => taskDoc() }), /command is required/);
  });
});

describe('app-entrypoint with a fake child', () => {
  it('waits the shutdown delay after SIGTERM, forwarding other signals and later SIGTERMs, then SIGTERMs the group', async () => {
    const c = fakeChild();
    const signals = fakeSignals();
    const clock = manualClock();
    const done = runAppEntrypoint({ command: ['app'], shutdownDelayMs: 10_000, spawn: c.spawn, signals, clock });
    await settle();
    signals.emit('SIGUSR2');
    signals.emit('SIGTERM');
    await settle();
    assert.deepEqual(clock.pending, [10_000]);
    signals.emit('SIGTERM');
    assert.deepEqual(c.sent, [
      { to: 'pid', signal: 'SIGUSR2' },
      { to: 'pid', signal: 'SIGTERM' },
    ]);
    clock.release();
    await settle();
    assert.deepEqual(c.sent.at(-1), { to: 'group', signal: 'SIGTERM' });
    c.exit(55);
    assert.equal(await done, 55);
    assert.equal(signals.count(), 0);
  });

  it('returns early when the application exits during the delay', async () => {
    const c = fakeChild();
    const signals = fakeSignals();
    const clock = manualClock();
    const done = runAppEntrypoint({ command: ['app'], shutdownDelayMs: 60_000, spawn: c.spawn, signals, clock });
    await settle();
    signals.emit('SIGTERM');
    await settle();
    assert.deepEqual(clock.pending, [60_000]);
    c.exit(0);
    assert.equal(await done, 0);
    await settle();
    assert.deepEqual(clock.pending, []);
    assert.deepEqual(c.sent, [], 'no SIGTERM sent');
  });

  it('with no delay, SIGTERMs the group at once', async () => {
    const c = fakeChild();
    const signals = fakeSignals();
    const clock = fakeClock();
    const done = runAppEntrypoint({ command: ['app'], spawn: c.spawn, signals, clock });
    await settle();
    signals.emit('SIGTERM');
    await settle();
    assert.deepEqual(c.sent, [{ to: 'group', signal: 'SIGTERM' }]);
    assert.deepEqual(clock.sleeps, []);
    c.exit(143, 'SIGTERM');
    assert.equal(await done, 143);
  });

  it('sleeps a delay longer than a timer allows in several steps', async () => {
    const c = fakeChild();
    const signals = fakeSignals();
    const clock = fakeClock();
    const done = runAppEntrypoint({ command: ['app'], shutdownDelayMs: parseGoDuration('1000h'), spawn: c.spawn, signals, clock });
    await settle();
    signals.emit('SIGTERM');
    await settle();
    assert.equal(
      clock.sleeps.reduce((a, b) => a + b, 0),
      3_600_000_000,
    );
    assert.ok(clock.sleeps.every((ms) => ms <= 2 ** 31 - 1));
    c.exit(0);
    assert.equal(await done, 0);
  });

  it('a SIGTERM received while the command starts still counts', async () => {
    const c = fakeChild();
    const signals = fakeSignals();
    const clock = fakeClock();
    const done = runAppEntrypoint({
      command: ['app'],
      spawn: async (cmd) => {
        signals.emit('SIGTERM');
        return c.spawn(cmd);
      },
      signals,
      clock,
    });
    await settle();
    assert.deepEqual(c.sent, [{ to: 'group', signal: 'SIGTERM' }]);
    c.exit(0);
    assert.equal(await done, 0);
  });
});
