import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retry } from '@consul-ecs-ts/core';
import { backoffDelay } from '../../packages/core/src/util/retry.ts';
import { fakeClock } from '../helpers/fake-clock.ts';

describe('backoff', () => {
  it('grows exponentially, is capped, and jitters within [d/2, d]', () => {
    const lo = (n: number) => backoffDelay(n, { initialDelayMs: 100, maxDelayMs: 1000, random: () => 0 });
    const hi = (n: number) => backoffDelay(n, { initialDelayMs: 100, maxDelayMs: 1000, random: () => 0.999999 });
    assert.deepEqual([0, 1, 2, 3, 4, 10].map(lo), [50, 100, 200, 400, 500, 500]);
    assert.deepEqual([0, 1, 2, 3, 4, 10].map(hi), [100, 200, 400, 800, 1000, 1000]);
  });

  it('retries until success and stops at a non-retryable error', async () => {
    const clock = fakeClock();
    let calls = 0;
    const v = await retry(
      async () => {
        if (++calls < 3) throw new Error('transient');
        return 'ok';
      },
      { clock, random: () => 0 },
    );
    assert.equal(v, 'ok');
    assert.equal(calls, 3);
    assert.equal(clock.sleeps.length, 2);

    calls = 0;
    await assert.rejects(
      retry(
        async () => {
          calls++;
          throw new Error('fatal');
        },
        { clock, retryable: () => false },
      ),
      /fatal/,
    );
    assert.equal(calls, 1);
  });

  it('gives up at the deadline with the last error', async () => {
    const clock = fakeClock();
    const start = clock.now();
    await assert.rejects(
      retry(
        async (n) => {
          throw new Error(`attempt ${n}`);
        },
        { clock, deadlineMs: 10_000, maxDelayMs: 1000 },
      ),
      /attempt \d+/,
    );
    assert.ok(clock.now() - start <= 10_000 + 1, 'never sleeps past the deadline');
    assert.ok(clock.now() - start >= 10_000 - 1000);
  });
});
