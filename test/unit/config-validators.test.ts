import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
// @ts-expect-error: a plain ESM script without types.
import { generate, OUT } from '../../scripts/gen-config-validators.mjs';

describe('precompiled config validators', () => {
  it('match what ajv makes from schema.json now (run scripts/gen-config-validators.mjs after changing it)', () => {
    assert.equal(readFileSync(OUT as string, 'utf8'), (generate as () => string)());
  });
});
