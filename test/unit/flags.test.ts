import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFlags, UsageError } from '@consul-ecs-ts/cli';

const specs = {
  method: { type: 'string', usage: '', default: 'm' },
  addr: { type: 'string', usage: '', env: 'ADDR' },
  meta: { type: 'list', usage: '' },
  entity: { type: 'bool', usage: '', default: true },
} as const;

describe('Go-style flags', () => {
  it('takes -name value, -name=value, --name, repeatable and boolean flags', () => {
    const { flags, args } = parseFlags(specs, ['-method', 'x', '--addr=h:1', '-meta', 'a=b', '-meta=c=d', '-entity=false', 'rest', '-not-a-flag']);
    assert.equal(flags.method, 'x');
    assert.equal(flags.addr, 'h:1');
    assert.deepEqual(flags.meta, ['a=b', 'c=d']);
    assert.equal(flags.entity, false);
    assert.deepEqual(args, ['rest', '-not-a-flag']);
  });

  it('applies defaults and environment variables, flags winning', () => {
    assert.equal(parseFlags(specs, [], { ADDR: 'env:1' }).flags.addr, 'env:1');
    assert.equal(parseFlags(specs, ['-addr', 'flag:1'], { ADDR: 'env:1' }).flags.addr, 'flag:1');
    assert.equal(parseFlags(specs, []).flags.method, 'm');
    assert.equal(parseFlags(specs, []).flags.entity, true);
  });

  it('rejects unknown flags, missing values and bad booleans', () => {
    assert.throws(
      () => parseFlags(specs, ['-nope']),
      (e: unknown) => e instanceof UsageError && /not defined: -nope/.test(e.message),
    );
    assert.throws(() => parseFlags(specs, ['-method']), /needs an argument: -method/);
    assert.throws(() => parseFlags(specs, ['-entity=maybe']), /invalid boolean/);
  });
});
