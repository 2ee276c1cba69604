import type { Clock } from '@consul-ecs-ts/core';

/** A clock whose sleeps return at once and move time forward; records each sleep. */
export function fakeClock(startMs = Date.parse('2026-01-02T03:04:05Z')): Clock & { sleeps: number[]; advance(ms: number): void } {
  let now = startMs;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      sleeps.push(ms);
      now += ms;
    },
  };
}
