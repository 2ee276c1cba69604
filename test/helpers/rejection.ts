import assert from 'node:assert/strict';
import { ConsulEcsError } from '@consul-ecs-ts/core';

/** The ConsulEcsError `promise` rejects with; fails the test when it resolves, or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<ConsulEcsError> {
  const err = await promise.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConsulEcsError, `expected a ConsulEcsError, got ${String(err)}`);
  return err;
}
