// @consul-ecs-ts/core is ES modules only, and its package.json `exports` give
// each entry a `default` condition beside `import`, so a CommonJS caller can
// require() it on the Node.js versions that load ES modules with require()
// (20.19+, 22.12+): run on each runtime the suite runs on. Reads the built
// package (packages/core/dist); skipped before a build.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const built = existsSync(new URL('../../packages/core/dist/index.js', import.meta.url));

function runCommonJs(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--input-type=commonjs', '-e', script], { cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe(`require() of the package on Node.js ${process.version}`, { skip: !built && 'packages/core/dist is not built' }, () => {
  it("require('@consul-ecs-ts/core') gives the same API as import", async () => {
    const r = await runCommonJs(`
      const core = require('@consul-ecs-ts/core');
      import('@consul-ecs-ts/core').then((esm) => {
        console.log(JSON.stringify({ same: Object.keys(core).join() === Object.keys(esm).join(), meshInit: typeof core.meshInit, error: typeof core.ConsulEcsError }));
      });`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { same: true, meshInit: 'function', error: 'function' });
  });

  it("require('@consul-ecs-ts/core/testkit')", async () => {
    const r = await runCommonJs(`console.log(typeof require('@consul-ecs-ts/core/testkit').EcsAgentSimulator);`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'function');
  });
});
