// Property tests of the configuration loader: whatever text CONSUL_ECS_CONFIG_JSON
// holds, loading it gives a resolved configuration or a ConsulEcsError that says
// where the problem is, and nothing else (no TypeError from a value of the wrong
// shape reaching the defaults).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { loadConfig } from '../../packages/core/src/config/load.ts';
import { findJsonSyntaxError, parseConfigJson } from '../../packages/core/src/config/json.ts';
import { ConfigValidationError, validateConfig } from '../../packages/core/src/config/validate.ts';
import type { ResolvedConfig } from '../../packages/core/src/config/types.ts';
import { ConsulEcsError } from '../../packages/core/src/util/errors.ts';

const RUNS = 300;
const EXAMPLES = ['test_config.json', 'test_config_empty_fields.json', 'test_config_null_nested_fields.json'].map(
  (name) => JSON.parse(readFileSync(new URL(`../fixtures/config/consul-ecs-v0.10.0/${name}`, import.meta.url), 'utf8')) as unknown,
);

/** A problem line is `<JSON pointer>: <what>`, the pointer `(root)` for the document itself. */
const PROBLEM = /^(\(root\)|(\/([^/~]|~[01])*)+): \S/;

type Outcome = { config: ResolvedConfig } | { error: ConsulEcsError };

/** Loads text as the CLI does; fails the property on anything but a config or a ConsulEcsError. */
async function load(text: string): Promise<Outcome> {
  try {
    return { config: await loadConfig({ env: { CONSUL_ECS_CONFIG_JSON: text } }) };
  } catch (err) {
    assert.ok(err instanceof ConsulEcsError, `expected a ConsulEcsError, got ${err instanceof Error ? err.stack : String(err)}`);
    assert.match(err.code, /^config-(invalid|missing)$/);
    if (err instanceof ConfigValidationError) {
      assert.ok(err.problems.length > 0, 'a validation error lists its problems');
      for (const p of err.problems) assert.match(p, PROBLEM, `problem does not start with a JSON path: ${p}`);
    }
    return { error: err };
  }
}

/** What a resolved configuration always holds, whatever the input. */
function assertResolved(config: ResolvedConfig): void {
  assert.equal(typeof config.bootstrapDir, 'string');
  assert.ok(config.bootstrapDir.length > 0);
  assert.equal(typeof config.consulServers.hosts, 'string');
  for (const port of [config.consulServers.grpc.port, config.consulServers.http.port, config.proxy.publicListenerPort, config.proxy.healthCheckPort]) {
    assert.ok(Number.isInteger(port) && port > 0 && port <= 65535, `port ${port}`);
  }
  assert.ok(Array.isArray(config.healthSyncContainers));
  assert.ok(Array.isArray(config.proxy.upstreams));
  assert.ok(Array.isArray(config.service.tags));
  assert.equal(typeof config.service.meta, 'object');
  assert.equal(typeof config.consulLogin.meta, 'object');
}

/** A JSON path into a value: the keys and indexes of one of its nodes. */
function paths(value: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out = [at];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]));
  return out;
}

type Mutation = { kind: 'drop' } | { kind: 'set'; value: unknown };

/** A copy of `doc` with the node at `path` dropped or replaced. */
function mutate(doc: unknown, path: Array<string | number>, m: Mutation): unknown {
  if (path.length === 0) return m.kind === 'drop' ? {} : m.value;
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  if (m.kind === 'set') node[last] = m.value;
  else if (Array.isArray(node)) node.splice(last as number, 1);
  else delete node[last];
  return copy;
}

/** Values a field may wrongly hold: other types, huge and odd numbers, nested nulls, unicode. */
const oddValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 65536, 2 ** 53, 1e308, -1e308, '', ' ', '\u0000', '💥', 'ü/~0~1', [], {}, [null], { a: null }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ unit: 'binary' }),
  fc.dictionary(fc.string(), fc.constantFrom(null, 1, 'x', [null])),
  fc.array(fc.oneof(fc.constant(null), fc.string(), fc.integer()), { maxLength: 4 }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** An example config with one to four of its nodes dropped or replaced. */
const mutatedExample = fc
  .tuple(
    fc.constantFrom(...EXAMPLES),
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.oneof(
          fc.constant<Mutation>({ kind: 'drop' }),
          oddValue.map((value): Mutation => ({ kind: 'set', value })),
        ),
      ),
      {
        minLength: 1,
        maxLength: 4,
      },
    ),
  )
  .map(([example, mutations]) =>
    mutations.reduce((doc, [pick, m]) => {
      const all = paths(doc);
      return mutate(doc, all[pick % all.length]!, m);
    }, example),
  );

describe('config loader properties', () => {
  it('the example configs load (the base the mutations start from)', async () => {
    for (const example of EXAMPLES) {
      const outcome = await load(JSON.stringify(example));
      if ('error' in outcome) assert.fail(outcome.error.message);
    }
  });

  it('any JSON value loads, or fails with a ConsulEcsError whose problems each name a JSON path', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        async (text) => {
          const outcome = await load(text);
          if ('config' in outcome) assertResolved(outcome.config);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('mutated example configs (dropped keys, wrong types, huge numbers, nulls, unicode) load or fail naming a JSON path', async () => {
    await fc.assert(
      fc.asyncProperty(mutatedExample, async (doc) => {
        const outcome = await load(JSON.stringify(doc));
        if ('config' in outcome) assertResolved(outcome.config);
      }),
      { numRuns: RUNS },
    );
  });

  it('validateConfig takes any value (not only what JSON.parse gives) without another exception', async () => {
    await fc.assert(
      fc.asyncProperty(fc.anything({ maxDepth: 3 }), async (value) => {
        try {
          assertResolved(await validateConfig(value, 'generated'));
        } catch (err) {
          assert.ok(err instanceof ConfigValidationError, `expected a ConfigValidationError, got ${err instanceof Error ? err.stack : String(err)}`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('non-JSON text fails with the syntax error at a line and column within the text', async () => {
    const notJson = fc.string({ unit: 'binary' }).filter((s) => {
      if (!s.trim()) return false;
      try {
        JSON.parse(s);
        return false;
      } catch {
        return true;
      }
    });
    await fc.assert(
      fc.asyncProperty(notJson, async (text) => {
        const outcome = await load(text);
        assert.ok('error' in outcome, 'non-JSON text must not load');
        assert.equal(outcome.error.code, 'config-invalid');
        const m = /^CONSUL_ECS_CONFIG_JSON is not valid JSON: line (\d+), column (\d+): expected .+; fix the JSON syntax$/.exec(outcome.error.message);
        assert.ok(m, `no position in: ${outcome.error.message}`);
        const [line, column] = [Number(m[1]), Number(m[2])];
        const lines = text.split('\n');
        assert.ok(line >= 1 && line <= lines.length, `line ${line} of ${lines.length}`);
        assert.ok(column >= 1 && column <= lines[line - 1]!.length + 1, `column ${column} of line ${line}`);
        assert.deepEqual(findJsonSyntaxError(text), { line, column, reason: findJsonSyntaxError(text)!.reason });
      }),
      { numRuns: RUNS },
    );
  });

  it('the syntax error of truncated JSON points into the text, and valid JSON has none', () => {
    fc.assert(
      fc.property(fc.json(), fc.nat(), (text, cut) => {
        assert.equal(findJsonSyntaxError(text), undefined);
        const truncated = text.slice(0, cut % Math.max(text.length, 1));
        let parses = true;
        try {
          JSON.parse(truncated);
        } catch {
          parses = false;
        }
        if (parses) return;
        assert.throws(
          () => parseConfigJson(truncated, 'cut'),
          (err) => err instanceof ConsulEcsError && /^cut is not valid JSON: line \d+, column \d+: expected /.test(err.message),
        );
      }),
      { numRuns: RUNS },
    );
  });
});
