import { constants as osConstants } from 'node:os';
import type { Clock } from '@consul-ecs-ts/core';
import { ConsulEcsError, describeError } from '@consul-ecs-ts/core';
import { silentLogger, type Logger } from '@consul-ecs-ts/core';

/**
 * Where an entrypoint hears process signals. The default is the process itself;
 * tests pass an EventEmitter and emit signal names on it.
 */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

/** The signals the process receives. */
export const processSignals: SignalSource = {
  on: (signal, listener) => process.on(signal, listener),
  off: (signal, listener) => process.off(signal, listener),
};

/**
 * The signals an entrypoint passes on to its command (besides SIGTERM, which it
 * handles itself). consul-ecs forwards every signal but SIGCHLD and SIGURG; a
 * Node.js process can only listen to named ones, so these are the catchable
 * signals a supervisor may reasonably get. SIGUSR1 included: Envoy reopens its
 * logs on it (listening to it also keeps Node.js from opening its inspector).
 */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = (
  ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGWINCH', 'SIGCONT', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGPWR'] as const
).filter((s) => s in osConstants.signals);

/** How a command ended. */
export interface ChildExit {
  /** What the entrypoint exits with: the command's exit code, or 128 + the signal number when a signal ended it. */
  code: number;
  exitCode?: number;
  signal?: NodeJS.Signals;
}

/** A started command. */
export interface RunningChild {
  readonly pid: number;
  /** Sends a signal to the command's process (nothing once it has exited). */
  kill(signal: NodeJS.Signals): void;
  /** Sends a signal to the command's process group (nothing once it has exited). */
  killGroup(signal: NodeJS.Signals): void;
  /** Settles when the command exits; never rejects. */
  readonly exited: Promise<ChildExit>;
}

export interface SpawnOptions {
  /** The command's environment. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/**
 * Starts a command, resolving once it runs; rejects with a ConsulEcsError
 * (`command-start-failed`) when it cannot start (not found, not executable).
 */
export type Spawner = (command: readonly string[], opts?: SpawnOptions) => Promise<RunningChild>;

/** Exit code for a command that exited with `exitCode` or was ended by `signal`. */
export function exitCodeOf(exitCode: number | null | undefined, signal: string | null | undefined): number {
  if (typeof exitCode === 'number') return exitCode;
  const num = signal ? (osConstants.signals as Record<string, number | undefined>)[signal] : undefined;
  return num === undefined ? 1 : 128 + num;
}

function startFailure(file: string, code: string | undefined, message: string | undefined): ConsulEcsError {
  const why =
    code === 'ENOENT'
      ? `executable file not found${file.includes('/') ? '' : ' in PATH'}`
      : code === 'EACCES'
        ? 'permission denied (is it an executable file?)'
        : (message ?? 'unknown error');
  return new ConsulEcsError('command-start-failed', `cannot start the command ${file}: ${why}${code && !why.includes(code) ? ` (${code})` : ''}`);
}

/**
 * Runs a command with execa: stdio inherited, in its own process group
 * (`detached`), so the group can be signalled as a whole, as consul-ecs does
 * with Setpgid. execa is loaded on first use.
 */
export const execaSpawner: Spawner = async (command, opts = {}) => {
  const [file, ...args] = command;
  if (!file) throw new ConsulEcsError('command-missing', 'no command to run');
  const { execa } = await import('execa');
  const subprocess = execa(file, args, {
    stdio: 'inherit',
    detached: true,
    cleanup: false,
    reject: false,
    env: opts.env ?? process.env,
    extendEnv: false,
  });
  const pid = subprocess.pid;
  if (pid === undefined) {
    const result = await subprocess;
    throw startFailure(file, (result as { code?: string }).code, result.originalMessage || result.shortMessage);
  }
  let done = false;
  const exited: Promise<ChildExit> = subprocess.then(
    (r) => {
      done = true;
      const exit: ChildExit = { code: exitCodeOf(r.exitCode, r.signal) };
      if (r.exitCode !== undefined) exit.exitCode = r.exitCode;
      if (r.signal !== undefined) exit.signal = r.signal;
      return exit;
    },
    () => {
      done = true;
      return { code: 1 };
    },
  );
  return {
    pid,
    kill: (signal) => {
      if (!done) process.kill(pid, signal);
    },
    killGroup: (signal) => {
      if (!done) process.kill(-pid, signal);
    },
    exited,
  };
};

/** What both entrypoints take besides the command. */
export interface EntrypointDeps {
  /** Default {@link processSignals}. */
  signals?: SignalSource;
  /** Default {@link execaSpawner}. */
  spawn?: Spawner;
  /** The command's environment. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Signals passed on to the command. Default {@link FORWARDED_SIGNALS}. */
  forwardSignals?: readonly NodeJS.Signals[];
  clock?: Clock;
  logger?: Logger;
}

/** A command under supervision: its process, and the SIGTERMs the entrypoint got. */
export interface Supervised {
  child: RunningChild;
  /** Settles on the first SIGTERM, including one received while the command was starting. */
  firstSigterm: Promise<void>;
  /** Removes the signal listeners. */
  dispose(): void;
}

/**
 * Listens for signals, then starts the command. The first SIGTERM settles
 * `firstSigterm`; later ones are forwarded to the command or dropped, as
 * `laterSigterm` says; every other listened signal is forwarded to the
 * command's process.
 */
export async function supervise(command: readonly string[], deps: EntrypointDeps, laterSigterm: 'forward' | 'ignore'): Promise<Supervised> {
  if (command.length === 0 || !command[0]) throw new ConsulEcsError('command-missing', 'command is required');
  const signals = deps.signals ?? processSignals;
  const log = deps.logger ?? silentLogger;
  let child: RunningChild | undefined;
  const forward = (signal: NodeJS.Signals) => {
    if (!child) {
      log.warn('signal received before the command started; not forwarded', { signal });
      return;
    }
    try {
      child.kill(signal);
      log.debug('forwarded signal', { signal, pid: child.pid });
    } catch (err) {
      log.warn('forwarding signal', { signal, error: describeError(err) });
    }
  };
  let sigterms = 0;
  let onFirst!: () => void;
  const firstSigterm = new Promise<void>((resolve) => (onFirst = resolve));
  const listeners = new Map<NodeJS.Signals, () => void>();
  listeners.set('SIGTERM', () => {
    sigterms++;
    if (sigterms === 1) onFirst();
    else if (laterSigterm === 'forward') forward('SIGTERM');
    else log.debug('ignoring SIGTERM');
  });
  for (const sig of deps.forwardSignals ?? FORWARDED_SIGNALS) {
    if (sig !== 'SIGTERM') listeners.set(sig, () => forward(sig));
  }
  for (const [sig, fn] of listeners) signals.on(sig, fn);
  const dispose = () => {
    for (const [sig, fn] of listeners) signals.off(sig, fn);
  };
  try {
    child = await (deps.spawn ?? execaSpawner)(command, deps.env ? { env: deps.env } : {});
  } catch (err) {
    dispose();
    throw err;
  }
  log.debug('started the command', { command: command[0], pid: child.pid });
  return { child, firstSigterm, dispose };
}

/** Sends SIGTERM to the command's process group, logging (not throwing) a failure. */
export function terminateGroup(child: RunningChild, log: Logger): void {
  try {
    child.killGroup('SIGTERM');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ESRCH') log.warn('sending SIGTERM to the command', { pid: child.pid, error: describeError(err) });
  }
}

/** setTimeout's longest delay; longer sleeps are made of several. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Sleeps `ms` (any length); resolves true when the time has passed, false when aborted. */
export async function sleepFor(clock: Clock, ms: number, signal: AbortSignal): Promise<boolean> {
  let left = ms;
  while (left > 0) {
    const step = Math.min(left, MAX_TIMER_MS);
    try {
      await clock.sleep(step, signal);
    } catch {
      return false;
    }
    left -= step;
  }
  return !signal.aborted;
}
