// Property tests of the aws-iam login bearer token: a token made by
// createLoginBearerToken decodes back to the request it signed, and anything
// else given to decodeLoginBearerToken fails with a ConsulEcsError naming the
// field at fault, never a SyntaxError or TypeError.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createLoginBearerToken, decodeLoginBearerToken } from '../../packages/core/src/aws/sigv4-login.ts';
import { ConsulEcsError } from '../../packages/core/src/util/errors.ts';

const RUNS = 300;
const FIELDS = ['iam_http_request_method', 'iam_request_url', 'iam_request_headers', 'iam_request_body'] as const;
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Decodes, expecting a ConsulEcsError that names `field` when given; returns the error or the decoded token. */
function decode(token: string): ReturnType<typeof decodeLoginBearerToken> | ConsulEcsError {
  try {
    return decodeLoginBearerToken(token);
  } catch (err) {
    assert.ok(err instanceof ConsulEcsError, `expected a ConsulEcsError, got ${err instanceof Error ? err.stack : String(err)}`);
    assert.equal(err.code, 'consul-login-refused');
    return err;
  }
}

function assertRefused(token: string, field?: string): void {
  const out = decode(token);
  assert.ok(out instanceof ConsulEcsError, `decoded ${JSON.stringify(out)}`);
  if (field) assert.ok(out.message.includes(field), `"${out.message}" does not name ${field}`);
}

/** A well-formed token's fields, before encoding. */
const headerName = fc.stringMatching(/^[A-Z][A-Za-z0-9-]{0,20}$/);
const tokenParts = fc.record({
  method: fc.constantFrom('POST', 'GET', 'PUT'),
  url: fc.webUrl(),
  headers: fc.dictionary(headerName, fc.array(fc.string({ unit: 'grapheme' }), { minLength: 1, maxLength: 2 }), { maxKeys: 5 }),
  body: fc.string({ unit: 'grapheme' }),
});
const encode = (p: { method: unknown; url: string; headers: unknown; body: string }) =>
  ({
    iam_http_request_method: p.method,
    iam_request_url: b64(p.url),
    iam_request_headers: b64(JSON.stringify(p.headers)),
    iam_request_body: b64(p.body),
  }) as Record<string, unknown>;

/** Strings that are not standard base64 (padded, the +/ alphabet). */
const notBase64 = fc.oneof(
  fc.constantFrom('a', 'ab=', 'abc', 'a===', '====', '-_-_', 'YWJj\n', 'YW Jj', '*', 'Zm9v=YmFy', 'YQ'),
  fc.string({ minLength: 1 }).filter((s) => !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)),
);

describe('login bearer token properties', () => {
  it('a token made by createLoginBearerToken decodes to the URL, headers and body it signed, and re-encodes to itself', async () => {
    const inputs = fc.record({
      region: fc.constantFrom('us-east-1', 'us-west-2', 'eu-west-1', 'cn-north-1', 'us-gov-west-1'),
      stsEndpoint: fc.option(fc.webUrl({ withQueryParameters: false, withFragments: false }), { nil: undefined }),
      serverIdHeaderValue: fc.option(fc.string({ unit: 'grapheme', minLength: 1 }), { nil: undefined }),
      accessKeyId: fc.stringMatching(/^(AKIA|ASIA)[A-Z0-9]{16}$/),
      secretAccessKey: fc.string({ minLength: 40, maxLength: 40 }),
      sessionToken: fc.option(fc.base64String({ minLength: 4 }), { nil: undefined }),
      role: fc.stringMatching(/^[A-Za-z0-9+=,.@_-]{1,32}$/),
      includeEntity: fc.boolean(),
      now: fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2040, 0, 1) }),
    });
    await fc.assert(
      fc.asyncProperty(inputs, async (i) => {
        const token = await createLoginBearerToken({
          credentials: {
            accessKeyId: i.accessKeyId,
            secretAccessKey: i.secretAccessKey,
            sessionToken: i.sessionToken,
            // Naming the role spares the STS call that would learn it.
            principalArn: `arn:aws:iam::123456789012:role/consul-ecs/${i.role}`,
          },
          region: i.region,
          stsEndpoint: i.stsEndpoint,
          serverIdHeaderValue: i.serverIdHeaderValue,
          includeEntity: i.includeEntity,
          clock: { now: () => i.now, sleep: async () => {} },
        });
        const t = decodeLoginBearerToken(token);
        assert.equal(t.method, 'POST');
        const sts = i.stsEndpoint ? new URL(i.stsEndpoint).href : `https://sts.${i.region}.amazonaws.com${i.region.startsWith('cn-') ? '.cn' : ''}/`;
        assert.equal(t.url, sts);
        assert.equal(t.body, 'Action=GetCallerIdentity&Version=2011-06-15');
        for (const [k, v] of Object.entries(t.headers)) assert.ok(Array.isArray(v) && v.length === 1 && typeof v[0] === 'string', k);
        assert.equal(t.headers['X-Consul-Iam-Serverid']?.[0], i.serverIdHeaderValue);
        assert.equal(t.headers['X-Amz-Security-Token']?.[0], i.sessionToken);
        assert.match(t.headers.Authorization![0]!, new RegExp(`^AWS4-HMAC-SHA256 Credential=${i.accessKeyId}/\\d{8}/${i.region}/sts/aws4_request, `));
        assert.equal(
          t.headers['X-Consul-Iam-Getentity-Body']?.[0],
          i.includeEntity ? `Action=GetRole&RoleName=${encodeURIComponent(i.role)}&Version=2010-05-08` : undefined,
        );
        const reencoded = {
          iam_http_request_method: t.method,
          iam_request_url: b64(t.url),
          iam_request_headers: b64(JSON.stringify(t.headers)),
          iam_request_body: b64(t.body),
        };
        assert.equal(JSON.stringify(reencoded), token);
      }),
      { numRuns: 200 },
    );
  });

  it('any well-formed token decodes to its method, URL, headers and body', () => {
    fc.assert(
      fc.property(tokenParts, (p) => {
        // (fast-check may build null-prototype objects; the decoder gives plain ones.)
        assert.deepEqual(decodeLoginBearerToken(JSON.stringify(encode(p))), JSON.parse(JSON.stringify(p)));
      }),
      { numRuns: RUNS },
    );
  });

  it('arbitrary strings and arbitrary JSON fail with a ConsulEcsError, never another exception', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        (text) => {
          const out = decode(text);
          assert.ok(out instanceof ConsulEcsError, `decoded ${text}`);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('a token with one field missing, of the wrong type or not base64 fails naming that field', () => {
    const corruption = fc.record({
      field: fc.constantFrom(...FIELDS),
      value: fc.oneof(fc.constant(undefined), fc.constantFrom(null, 1, true, [], {}), notBase64),
    });
    fc.assert(
      fc.property(tokenParts, corruption, (p, { field, value }) => {
        // The method is a string, any string: refusing a method other than POST is the server's call.
        if (field === 'iam_http_request_method' && typeof value === 'string') return;
        const raw = { ...encode(p), [field]: value };
        if (value === undefined) delete raw[field];
        assertRefused(JSON.stringify(raw), field);
      }),
      { numRuns: RUNS },
    );
  });

  it('headers that are not a JSON object of string arrays fail naming iam_request_headers', () => {
    const badHeaders = fc.oneof(
      fc.string().filter((s) => {
        try {
          JSON.parse(s);
          return false;
        } catch {
          return true;
        }
      }),
      fc.constantFrom('null', '[]', '"x"', '1', '{"A":"x"}', '{"A":[1]}', '{"A":null}', '{"A":[["x"]]}'),
      fc
        .jsonValue()
        .filter((v) => v === null || typeof v !== 'object' || Array.isArray(v))
        .map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(tokenParts, badHeaders, (p, headers) => {
        assertRefused(JSON.stringify({ ...encode(p), iam_request_headers: b64(headers) }), 'iam_request_headers');
      }),
      { numRuns: RUNS },
    );
  });
});
