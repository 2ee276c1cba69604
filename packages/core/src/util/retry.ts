import { systemClock } from './clock.js';
import type { IoOptions } from './options.js';

export interface BackoffOptions {
  /** First delay in milliseconds. Default 100. */
  initialDelayMs?: number;
  /** Upper bound of one delay in milliseconds. Default 5000. */
  maxDelayMs?: number;
  /** Multiplier between attempts. Default 2. */
  factor?: number;
  /** Random source in [0, 1) for full jitter; injectable for tests. */
  random?: () => number;
}

/**
 * Capped exponential backoff with jitter: attempt n waits a random time in
 * [d/2, d] where d = min(max, initial * factor^n). Half the delay stays fixed so
 * retries never collapse to zero wait.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const initial = opts.initialDelayMs ?? 100;
  const max = opts.maxDelayMs ?? 5000;
  const factor = opts.factor ?? 2;
  const random = opts.random ?? Math.random;
  const capped = Math.min(max, initial * factor ** attempt);
  return Math.round(capped / 2 + (capped / 2) * random());
}

export interface RetryOptions extends BackoffOptions, Pick<IoOptions, 'clock' | 'signal'> {
  /** Stop retrying once this many milliseconds have passed since the first attempt. */
  deadlineMs?: number;
  /** Stop after this many attempts in all. Default: unlimited (bounded by the deadline). */
  maxAttempts?: number;
  /** Whether an error may be retried. Default: always. */
  retryable?: (err: unknown) => boolean;
  /** Called before each wait, e.g. to log. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/** Runs `fn` until it succeeds, the error is not retryable, or the attempts or deadline run out. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const clock = opts.clock ?? systemClock;
  const start = clock.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      if (opts.retryable && !opts.retryable(err)) throw err;
      if (opts.maxAttempts !== undefined && attempt + 1 >= opts.maxAttempts) throw err;
      let delay = backoffDelay(attempt, opts);
      if (opts.deadlineMs !== undefined) {
        const left = start + opts.deadlineMs - clock.now();
        if (left <= 0) throw err;
        delay = Math.min(delay, left);
      }
      opts.onRetry?.(err, attempt, delay);
      await clock.sleep(delay, opts.signal);
    }
  }
}
