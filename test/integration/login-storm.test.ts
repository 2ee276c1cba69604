// A login storm, CI-sized: 20 tasks of one service start mesh-init at the same
// moment against a 3-server Consul cluster whose request rate limits are enforcing
// and low enough that the storm gets 429 and 503 answers. Every task must still
// join: service and sidecar registered once, its token in its bootstrap dir and
// known to Consul, one login token per task and none of no task.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LoginStormStack, type Contender } from '../../scripts/lib/login-storm.ts';
import { countByStatus } from '../../scripts/lib/counting-proxy.ts';
import { CLI } from '../helpers/login-stack.ts';

const TASKS = 20;
const SEA = fileURLToPath(new URL('../../packages/cli/dist/sea/consul-ecs', import.meta.url));

describe('login storm: 20 tasks at once against a rate-limited 3-server cluster', { timeout: 150_000 }, () => {
  let stack: LoginStormStack;
  before(async () => {
    stack = await LoginStormStack.start({ tasks: TASKS, requestLimits: { readRate: 3, writeRate: 2 } });
  });
  after(async () => {
    await stack?.dispose();
  });

  it('every task joins through the 429s and 503s, with one token each and no orphans; cleanup leaves Consul as it was', async () => {
    const ours: Contender = { name: `consul-ecs (node ${process.version})`, argv: [process.execPath, CLI], keepsLoginToken: true };
    const result = await stack.storm(ours, { timeoutMs: 120_000, executable: SEA });
    const byStatus = countByStatus(stack.proxy.calls);
    const limited = (byStatus.get('429') ?? 0) + (byStatus.get('503') ?? 0);
    const answers = [...byStatus].map(([s, n]) => `${s}: ${n}`).join(', ');
    assert.ok(limited > 0, `the rate limits never answered 429 or 503 (answers: ${answers}): the storm did not test backing off`);
    assert.deepEqual(await stack.problems(result), [], `answers: ${answers}`);
    const tokens = await stack.consul.loginTokens();
    assert.equal(tokens.length, TASKS, 'one login token per task');
    assert.equal((await stack.consul.nodeServices(stack.clusterNode)).length, 2 * TASKS, 'a service and a sidecar per task, each once');
    await stack.cleanup();
    assert.deepEqual(await stack.consul.loginTokens(), []);
    assert.deepEqual(await stack.consul.nodeServices(stack.clusterNode), []);
  });
});
