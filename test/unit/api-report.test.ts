// The public API of @consul-ecs-ts/core (and of its testkit) is what
// api/core.api.md and api/core-testkit.api.md say: an export added, removed or
// changed without the reports being rewritten (npm run api:update) fails here,
// so that npm test, which builds first, holds every change to the surface for
// review. Fails, saying to build, when packages/core/dist is missing or older
// than its source: it would describe another API.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('API report', () => {
  it("core's built declarations match api/*.api.md", async () => {
    const run = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(process.execPath, ['api/report.mjs', '--check'], { cwd: root }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, output: `${stdout}${stderr}` });
      });
    });
    assert.notEqual(run.code, 3, `${run.output.trim()}: run npm run build first`);
    assert.equal(run.code, 0, run.output);
  });
});
