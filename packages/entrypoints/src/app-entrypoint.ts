import { systemClock } from '@consul-ecs-ts/core';
import { ConsulEcsError } from '@consul-ecs-ts/core';
import { silentLogger } from '@consul-ecs-ts/core';
import { sleepFor, supervise, terminateGroup, type EntrypointDeps } from './entrypoint.js';

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, μs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
const SEGMENT = /(\d*)(?:\.(\d*))?([^\d.]*)/y;
/** Go's time.Duration is an int64 of nanoseconds: at most 2^63 - 1, which a double rounds to 2^63. */
const MAX_DURATION_NS = 2 ** 63;

/**
 * Parses a duration as Go's `time.ParseDuration` does (`10s`, `1m30s`, `500ms`,
 * `1.5h`, `0`; units ns, us, µs, ms, s, m, h; an optional sign) and returns
 * milliseconds. Throws a ConsulEcsError (`invalid-duration`) with Go's wording.
 */
export function parseGoDuration(text: string): number {
  const invalid = (why = 'invalid duration') => new ConsulEcsError('invalid-duration', `time: ${why} ${JSON.stringify(text)}`);
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    sign = s.startsWith('-') ? -1 : 1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw invalid();
  let ns = 0;
  let pos = 0;
  while (pos < s.length) {
    const c = s[pos]!;
    if (c !== '.' && !(c >= '0' && c <= '9')) throw invalid();
    SEGMENT.lastIndex = pos;
    const m = SEGMENT.exec(s);
    if (!m || m[0].length === 0) throw invalid();
    const [whole, int = '', frac, unit = ''] = m;
    if (int === '' && !frac) throw invalid();
    if (unit === '') throw invalid('missing unit in duration');
    const scale = UNIT_NS[unit];
    if (scale === undefined) throw invalid(`unknown unit ${JSON.stringify(unit)} in duration`);
    ns += Number(`${int || '0'}.${frac || '0'}`) * scale;
    if (ns > MAX_DURATION_NS) throw invalid();
    pos += whole.length;
  }
  return (sign * ns) / 1e6;
}

/** A duration in milliseconds as Go prints one: `1m30s`, `500ms`, `1h0m0s`, `0s`. */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${+rest.toFixed(6)}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = `${+(rest / 1000).toFixed(9)}s`;
  return sign + (h ? `${h}h${m}m${s}` : m ? `${m}m${s}` : s);
}

export interface AppEntrypointOptions extends EntrypointDeps {
  /** The application command and its arguments. */
  command: readonly string[];
  /** How long the application keeps running after SIGTERM, in milliseconds. Default 0. */
  shutdownDelayMs?: number;
}

/**
 * `consul-ecs app-entrypoint`: runs the application in its own process group.
 * On the first SIGTERM it waits the shutdown delay (the application keeps
 * serving while the dataplane drains), or less if the application exits, then
 * sends SIGTERM to the application's process group. Other signals, and later
 * SIGTERMs, are forwarded to the application. Resolves with its exit code
 * (128 + signal number when a signal ended it) as soon as it exits. Rejects
 * with a ConsulEcsError when the command cannot start.
 */
export async function runAppEntrypoint(opts: AppEntrypointOptions): Promise<number> {
  const log = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const delay = opts.shutdownDelayMs ?? 0;
  const { child, firstSigterm, dispose } = await supervise(opts.command, opts, 'forward');
  const stop = new AbortController();
  try {
    const first = await Promise.race([child.exited, firstSigterm.then(() => 'sigterm' as const)]);
    if (first !== 'sigterm') return first.code;
    if (delay > 0) {
      log.info(`received SIGTERM; waiting ${formatGoDuration(delay)} before terminating the application`);
      const waited = await Promise.race([child.exited, sleepFor(clock, delay, stop.signal).then(() => 'waited' as const)]);
      if (waited !== 'waited') return waited.code;
      log.info('shutdown delay has passed; sending SIGTERM to the application', { pid: child.pid });
    } else {
      log.info('received SIGTERM; sending SIGTERM to the application', { pid: child.pid });
    }
    terminateGroup(child, log);
    return (await child.exited).code;
  } finally {
    stop.abort(new ConsulEcsError('entrypoint-done', 'the command has exited'));
    dispose();
  }
}
