import type { Dispatcher } from 'undici';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

/** Environment variables, as `process.env` holds them; each call reads only those it documents. */
export type Env = Record<string, string | undefined>;

/**
 * How a library call reaches the outside world, shared by the options of every
 * use case and client: whatever is left out takes the default, so production code
 * passes none of it and a test passes a mock dispatcher, a fake clock, a capturing
 * logger. Option types take the fields they use, with `Pick` where not all four.
 */
export interface IoOptions {
  /**
   * undici dispatcher for the HTTP calls made (task metadata, AWS, Consul when the
   * call makes its own clients), e.g. a `MockAgent` or a proxy. Default: undici's
   * global dispatcher.
   */
  dispatcher?: Dispatcher;
  /** Time for deadlines, retry backoff and credential expiry. Default {@link systemClock}. */
  clock?: Clock;
  /** Where progress and retries are logged. Default {@link silentLogger}: nothing. */
  logger?: Logger;
  /** Stops the call: retries and waits end with the signal's reason. */
  signal?: AbortSignal;
}
