// The aws-iam login bearer token, pinned for fixed credentials and a fixed
// clock. The fixture's signatures were computed independently by botocore
// (scripts/fixtures/record-login-fixtures.ts), and the GetCallerIdentity answer
// is moto's, recorded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { createLoginBearerToken, decodeLoginBearerToken } from '@consul-ecs-ts/core';
import { parsePrincipalArn } from '../../packages/core/src/aws/arn.ts';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/login-bearer-token.json', import.meta.url), 'utf8')) as {
  inputs: { credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string }; clock: string; region: string; serverIdHeaderValue: string };
  token: string;
  botocoreAuthorization: { iamGetRole: string; stsGetCallerIdentity: string };
};
const callerIdentityXml = readFileSync(new URL('../fixtures/sts-get-caller-identity.xml', import.meta.url), 'utf8');
const { inputs } = fixture;

async function makeToken(over: Partial<Parameters<typeof createLoginBearerToken>[0]> = {}): Promise<{ token: string; stsCalls: number }> {
  const agent = new MockAgent();
  agent.disableNetConnect();
  let stsCalls = 0;
  agent
    .get('https://sts.us-west-2.amazonaws.com')
    .intercept({ path: '/', method: 'POST', body: (b) => b === 'Action=GetCallerIdentity&Version=2011-06-15' })
    .reply(() => {
      stsCalls++;
      return { statusCode: 200, data: callerIdentityXml, responseOptions: { headers: { 'content-type': 'text/xml' } } };
    })
    .persist();
  try {
    const token = await createLoginBearerToken({
      credentials: inputs.credentials,
      region: inputs.region,
      includeEntity: true,
      serverIdHeaderValue: inputs.serverIdHeaderValue,
      dispatcher: agent,
      clock: { now: () => Date.parse(inputs.clock), sleep: async () => {} },
      ...over,
    });
    return { token, stsCalls };
  } finally {
    await agent.close();
  }
}

describe('aws-iam login bearer token', () => {
  it('is exactly the recorded token for fixed credentials and clock', async () => {
    const { token, stsCalls } = await makeToken();
    assert.equal(token, fixture.token);
    assert.equal(stsCalls, 1, 'one real GetCallerIdentity call to learn the role');
  });

  it('is the same token without the STS call when the credentials name their role (as the ECS agent does)', async () => {
    const { token, stsCalls } = await makeToken({
      credentials: { ...inputs.credentials, principalArn: 'arn:aws:iam::123456789012:role/consul-ecs/web-task' },
    });
    assert.equal(stsCalls, 0, 'the role came with the credentials');
    assert.equal(token, fixture.token);
  });

  it('carries the signatures botocore computes for the same requests', async () => {
    const t = decodeLoginBearerToken((await makeToken()).token);
    assert.equal(t.headers.Authorization?.[0], fixture.botocoreAuthorization.stsGetCallerIdentity);
    const inner = JSON.parse(t.headers['X-Consul-Iam-Getentity-Headers']![0]!) as Record<string, string[]>;
    assert.equal(inner.Authorization?.[0], fixture.botocoreAuthorization.iamGetRole);
  });

  it('has every field the contract names', async () => {
    const raw = JSON.parse((await makeToken()).token) as Record<string, string>;
    assert.deepEqual(Object.keys(raw).sort(), ['iam_http_request_method', 'iam_request_body', 'iam_request_headers', 'iam_request_url']);
    assert.equal(raw.iam_http_request_method, 'POST');
    for (const k of ['iam_request_url', 'iam_request_headers', 'iam_request_body']) {
      assert.match(raw[k]!, /^[A-Za-z0-9+/]+=*$/, `${k} is standard base64`);
    }

    const t = decodeLoginBearerToken(JSON.stringify(raw));
    assert.equal(t.url, 'https://sts.us-west-2.amazonaws.com/');
    assert.equal(t.body, 'Action=GetCallerIdentity&Version=2011-06-15');
    // Headers: a JSON object of arrays, names in Go's canonical form, nothing Consul rejects.
    for (const [k, v] of Object.entries(t.headers)) {
      assert.ok(Array.isArray(v) && v.length === 1, `${k} is an array of one`);
      if (k.startsWith('X-Amz-')) assert.ok(['X-Amz-Date', 'X-Amz-Security-Token'].includes(k), `${k} is an allowed X-Amz header`);
    }
    assert.deepEqual(Object.keys(t.headers).sort(), [
      'Authorization',
      'Content-Type',
      'X-Amz-Date',
      'X-Amz-Security-Token',
      'X-Consul-Iam-Getentity-Body',
      'X-Consul-Iam-Getentity-Headers',
      'X-Consul-Iam-Getentity-Method',
      'X-Consul-Iam-Getentity-Url',
      'X-Consul-Iam-Serverid',
    ]);
    assert.equal(t.headers['Content-Type']?.[0], 'application/x-www-form-urlencoded; charset=utf-8');
    assert.equal(t.headers['X-Amz-Date']?.[0], '20260102T030405Z');
    assert.equal(t.headers['X-Amz-Security-Token']?.[0], inputs.credentials.sessionToken);
    assert.equal(t.headers['X-Consul-Iam-Serverid']?.[0], inputs.serverIdHeaderValue);
    const auth = t.headers.Authorization![0]!;
    assert.match(auth, /^AWS4-HMAC-SHA256 Credential=ASIAQEXAMPLE7TASKROLE\/20260102\/us-west-2\/sts\/aws4_request, /);
    assert.match(
      auth,
      /SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-consul-iam-getentity-body;x-consul-iam-getentity-headers;x-consul-iam-getentity-method;x-consul-iam-getentity-url;x-consul-iam-serverid, /,
    );

    // The embedded, signed iam:GetRole request for the role in the caller's ARN.
    assert.equal(t.headers['X-Consul-Iam-Getentity-Method']?.[0], 'POST');
    assert.equal(t.headers['X-Consul-Iam-Getentity-Url']?.[0], 'https://iam.amazonaws.com/');
    assert.equal(t.headers['X-Consul-Iam-Getentity-Body']?.[0], 'Action=GetRole&RoleName=web-task&Version=2010-05-08');
    const inner = JSON.parse(t.headers['X-Consul-Iam-Getentity-Headers']![0]!) as Record<string, string[]>;
    assert.deepEqual(Object.keys(inner).sort(), ['Authorization', 'Content-Type', 'X-Amz-Date', 'X-Amz-Security-Token', 'X-Consul-Iam-Serverid']);
    assert.match(
      inner.Authorization![0]!,
      /Credential=ASIAQEXAMPLE7TASKROLE\/20260102\/us-east-1\/iam\/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-consul-iam-serverid, /,
    );
  });

  it('without includeEntity makes no AWS call and embeds no IAM request; custom endpoints are used as given', async () => {
    const { token, stsCalls } = await makeToken({ includeEntity: false, serverIdHeaderValue: undefined, stsEndpoint: 'https://sts.internal.example:8443' });
    assert.equal(stsCalls, 0);
    const t = decodeLoginBearerToken(token);
    assert.equal(t.url, 'https://sts.internal.example:8443/');
    assert.deepEqual(Object.keys(t.headers).sort(), ['Authorization', 'Content-Type', 'X-Amz-Date', 'X-Amz-Security-Token']);
  });

  it('names IAM users and roles from ARNs, refusing other principals', () => {
    assert.deepEqual(parsePrincipalArn('arn:aws:iam::123456789012:user/ops/alice'), { partition: 'aws', account: '123456789012', type: 'user', name: 'alice' });
    assert.equal(parsePrincipalArn('arn:aws:iam::123456789012:role/consul-ecs/web-task').name, 'web-task');
    assert.throws(() => parsePrincipalArn('arn:aws:sts::123456789012:federated-user/bob'), /neither a role, an assumed role nor a user/);
  });

  it('rejects an endpoint with a query string (Consul refuses one) before signing', async () => {
    await assert.rejects(
      makeToken({ includeEntity: false, stsEndpoint: 'https://sts.example/?x=1' }),
      /STS endpoint "https:\/\/sts\.example\/\?x=1" must not have a query string/,
    );
  });
});
