// Property tests of how the library reads Consul's answers (the ACL token of a
// login or token/self, a node's services, a service's health checks): an answer
// of the wrong shape, or truncated JSON, is a ConsulEcsError, never a TypeError
// later in the caller and never a value of the wrong type handed on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { MockAgent } from 'undici';
import { CatalogClient } from '../../packages/core/src/catalog/client.ts';
import { aclLogin, aclTokenSelf } from '../../packages/core/src/consul/acl.ts';
import { ConsulHttpClient } from '../../packages/core/src/consul/http-client.ts';
import { ConsulEcsError } from '../../packages/core/src/util/errors.ts';

const RUNS = 200;
const ORIGIN = 'http://consul.test:8500';
const uuid = fc.uuid();

/** Anything JSON can hold, for a field of the wrong type. */
const wrong = fc.jsonValue({ maxDepth: 2 });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: wrong }), { nil: undefined });
const shaped = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: wrong });

const aclToken = shaped(
  fc.record({ AccessorID: maybe(uuid), SecretID: maybe(uuid), Description: maybe(fc.string()), Local: maybe(fc.boolean()) }, { requiredKeys: [] }),
);
const service = shaped(
  fc.record(
    { ID: maybe(fc.string()), Service: maybe(fc.string()), Kind: maybe(fc.constantFrom('', 'connect-proxy')), Port: maybe(fc.nat(65535)) },
    { requiredKeys: [] },
  ),
);
const nodeServices = shaped(
  fc.record({ Node: maybe(fc.record({ Node: fc.string() })), Services: maybe(fc.array(service, { maxLength: 3 })) }, { requiredKeys: [] }),
);
const check = shaped(
  fc.record(
    { CheckID: maybe(fc.string()), Status: maybe(fc.constantFrom('passing', 'warning', 'critical')), ServiceID: maybe(fc.string()) },
    { requiredKeys: [] },
  ),
);
const checks = shaped(fc.array(check, { maxLength: 3 }));

/** JSON text of `doc`, or a truncated copy of it. */
const answerText = <T>(doc: fc.Arbitrary<T>) =>
  fc.oneof(
    { weight: 3, arbitrary: doc.map((d) => JSON.stringify(d)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          doc.map((d) => JSON.stringify(d)),
          fc.nat(),
        )
        .map(([text, cut]) => text.slice(0, cut % (text.length + 1))),
    },
  );

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

describe('Consul answer properties', () => {
  let agent: MockAgent;
  let http: ConsulHttpClient;
  before(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    http = new ConsulHttpClient({ address: ORIGIN, dispatcher: agent, retryDeadlineMs: 0 });
  });
  after(() => agent.close());

  const answer = (method: string, path: RegExp, text: string) => agent.get(ORIGIN).intercept({ path, method }).reply(200, text);

  /** Runs a call; a ConsulEcsError is returned, anything else thrown fails the property. */
  async function outcome<T>(call: () => Promise<T>): Promise<T | ConsulEcsError> {
    try {
      return await call();
    } catch (err) {
      assert.ok(err instanceof ConsulEcsError, `expected a ConsulEcsError, got ${err instanceof Error ? err.stack : String(err)}`);
      assert.equal(err.code, 'consul-bad-response');
      return err;
    }
  }

  it('a login or token/self answer gives a token with string AccessorID and SecretID, or consul-bad-response', async () => {
    await fc.assert(
      fc.asyncProperty(answerText(aclToken), fc.boolean(), async (text, login) => {
        const out = await outcome(() => {
          if (login) {
            answer('POST', /^\/v1\/acl\/login/, text);
            return aclLogin(http, { authMethod: 'iam', bearerToken: '{}' });
          }
          answer('GET', /^\/v1\/acl\/token\/self/, text);
          return aclTokenSelf(http, 'token', { stale: true });
        });
        if (out instanceof ConsulEcsError) return;
        assert.ok(isObject(out), `token ${JSON.stringify(out)}`);
        assert.equal(typeof out.SecretID, 'string', `SecretID ${JSON.stringify(out.SecretID)}`);
        assert.equal(typeof out.AccessorID, 'string', `AccessorID ${JSON.stringify(out.AccessorID)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('a node-services answer gives an array of service objects, or consul-bad-response', async () => {
    const catalog = new CatalogClient(http, () => 'token');
    await fc.assert(
      fc.asyncProperty(fc.oneof(answerText(nodeServices), fc.constant('null'), fc.constant('')), async (text) => {
        answer('GET', /^\/v1\/catalog\/node-services\//, text);
        const out = await outcome(() => catalog.nodeServices('node', 'Service == "web"'));
        if (out instanceof ConsulEcsError) return;
        assert.ok(Array.isArray(out), `services ${JSON.stringify(out)}`);
        for (const s of out) assert.ok(isObject(s), `service ${JSON.stringify(s)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('a health-checks answer gives an array of check objects, or consul-bad-response', async () => {
    const catalog = new CatalogClient(http, () => 'token');
    await fc.assert(
      fc.asyncProperty(fc.oneof(answerText(checks), fc.constant('null'), fc.constant('')), async (text) => {
        answer('GET', /^\/v1\/health\/checks\//, text);
        const out = await outcome(() => catalog.serviceChecks('web', 'web-1'));
        if (out instanceof ConsulEcsError) return;
        assert.ok(Array.isArray(out), `checks ${JSON.stringify(out)}`);
        for (const c of out) assert.ok(isObject(c), `check ${JSON.stringify(c)}`);
      }),
      { numRuns: RUNS },
    );
  });
});
