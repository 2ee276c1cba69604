// The V8 flags the executable and the CLI run with exist in the V8 of the
// runtime running this test (both runtimes run it): V8 ignores a flag it does
// not know, so a runtime upgrade that drops one would silently lose its effect.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { EXEC_ARGV, RUNTIME_V8_FLAGS } from '../../packages/sea/src/assets.ts';
import { commands } from '../../packages/cli/src/cli.ts';
import { runtimeV8Flags } from '../../packages/cli/src/v8-flags.ts';

const known = new Set([...execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' }).matchAll(/^\s+--([a-z0-9-]+)/gm)].map((m) => m[1]!));
/** The flag's name: `--no-opt` sets `--opt`, `--max-semi-space-size=3` sets `--max-semi-space-size`. */
const flagName = (flag: string) => flag.replace(/^--(no-)?/, '').replace(/=.*$/, '');

describe('V8 flags', () => {
  it('the executable runs with flags this V8 knows', () => {
    assert.ok(known.size > 100, 'node --v8-options lists the flags');
    for (const flag of EXEC_ARGV) assert.ok(known.has(flagName(flag)), `${flag} is not a V8 flag of ${process.version}`);
  });

  it('each command sets flags this V8 knows, and the long-running ones turn the optimising compilers off', () => {
    for (const command of commands) {
      const flags = runtimeV8Flags(command);
      for (const flag of flags) assert.ok(known.has(flagName(flag)), `${command.name}: ${flag} is not a V8 flag of ${process.version}`);
      assert.equal(flags.includes('--no-opt') && flags.includes('--no-maglev'), command.longRunning === true, command.name);
      // The training runs put these back before they save a code cache (packages/sea/src/assets.ts).
      for (const flag of flags) assert.ok(RUNTIME_V8_FLAGS.includes(flagName(flag)), `${flag} is missing from RUNTIME_V8_FLAGS`);
    }
  });
});
