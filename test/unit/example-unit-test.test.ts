// examples/unit-test: the example of a user's unit test (a custom mesh-init
// entrypoint tested with the testkit's stand-ins) passes, run as its README says.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const root = fileURLToPath(new URL('../..', import.meta.url));

it('examples/unit-test passes with node --test, as its README runs it', async () => {
  // Not node:test's own child protocol: the example reports as a command line run would.
  const { NODE_TEST_CONTEXT: _context, NODE_OPTIONS: _options, ...env } = process.env;
  const run = await execa(process.execPath, ['--test', 'examples/unit-test/entrypoint.test.mjs'], {
    cwd: root,
    env,
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`);
  // Node.js 20 reports in TAP when its output is not a terminal, later ones as spec.
  assert.match(run.stdout, /^[#ℹ] pass 3$/m);
  assert.match(run.stdout, /^[#ℹ] fail 0$/m);
});
