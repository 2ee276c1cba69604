// The testkit's stand-ins against the real servers: the same calls (those of an
// ECS task, scripts/fixtures/consul-scenario.ts) answered by a real Consul (with
// the aws-iam auth method against moto) and by ConsulStandIn (against
// AwsIamStandIn) have the same status, headers and shape (keys and types), and
// refusals the same words: the stand-ins cannot drift from Consul unnoticed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createLoginBearerToken, formBody, IAM_API_VERSION, signQueryRequest, STS_API_VERSION, type AwsCredentials } from '@consul-ecs-ts/core';
import { AwsIamStandIn, ConsulStandIn, recordedConsulAnswer, recordedConsulAnswerNames, type RecordedConsulAnswerName } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from '../../scripts/lib/aws-admin.ts';
import { configureIamAuthMethod, MOTO_ACCOUNT, startConsulAndMoto, type ConsulServer, type MotoServer } from '../../scripts/lib/local-stack.ts';
import { CLUSTER_ARN, MINIMAL_NODE, runConsulScenario, withPlaceholders, type LoginRole, type RecordedAnswer } from '../../scripts/fixtures/consul-scenario.ts';

const SERVER_ID = 'consul.shape.local';
const ROLES: Record<LoginRole, { path: string; tags: Record<string, string> }> = {
  web: { path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } },
  untrusted: { path: '/elsewhere/', tags: { [SERVICE_NAME_TAG]: 'web' } },
  untagged: { path: '/consul-ecs/', tags: {} },
};

/** The keys and types of a JSON value (arrays: the distinct shapes of their elements). */
function shape(v: unknown): unknown {
  if (v === null) return 'null';
  if (Array.isArray(v)) return ['array', ...new Set(v.map((e) => JSON.stringify(shape(e))))].sort();
  if (typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, shape((v as Record<string, unknown>)[k])]),
    );
  return typeof v;
}

/** A request's answer as compared: status, header names, content type, and the body's shape (a text: its words). */
function comparable(a: RecordedAnswer) {
  const t = withPlaceholders(a);
  return {
    status: t.status,
    headers: Object.keys(t.headers).sort(),
    contentType: t.headers['content-type'],
    body: typeof t.body === 'string' && t.headers['content-type'] !== 'application/json' ? t.body : shape(t.body),
  };
}

/** A login bearer token for a role's session credentials, signed for the STS/IAM endpoint. */
function bearerToken(credentials: AwsCredentials, endpoint: string, serverIdHeaderValue: string): Promise<string> {
  return createLoginBearerToken({ credentials, region: 'us-east-1', stsEndpoint: endpoint, iamEndpoint: endpoint, includeEntity: true, serverIdHeaderValue });
}

describe('the Consul and AWS stand-ins answer as the real servers', () => {
  let consul: ConsulServer;
  let moto: MotoServer;
  let real: Record<string, RecordedAnswer>;
  let standIn: Record<string, RecordedAnswer>;
  let aws: AwsIamStandIn;
  let consulStandIn: ConsulStandIn;

  before(async () => {
    [consul, moto] = await startConsulAndMoto();
    await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID });
    const motoRoles = {} as Record<LoginRole, { arn: string; credentials: AwsCredentials }>;
    for (const [name, spec] of Object.entries(ROLES) as Array<[LoginRole, (typeof ROLES)[LoginRole]]>) {
      const role = await moto.admin.createRole({ name, ...spec });
      motoRoles[name] = { arn: role.arn, credentials: { ...(await moto.admin.assumeRole(role.arn)), principalArn: role.arn } };
    }

    aws = await new AwsIamStandIn({ roles: Object.entries(ROLES).map(([name, spec]) => ({ name, ...spec })) }).start();
    consulStandIn = await new ConsulStandIn({
      managementToken: consul.managementToken,
      authMethod: { stsEndpoint: aws.url, serverIdHeaderValue: SERVER_ID, boundIamPrincipalArns: [`arn:aws:iam::${aws.account}:role/consul-ecs/*`] },
    }).start();

    real = await runConsulScenario({
      consulUrl: consul.httpAddr,
      managementToken: consul.managementToken,
      authMethod: 'iam-ecs-service-token',
      serverIdHeaderValue: SERVER_ID,
      roleArn: (role) => motoRoles[role].arn,
      bearerToken: (role, opts = {}) => bearerToken(motoRoles[role].credentials, moto.url, opts.serverIdHeaderValue ?? SERVER_ID),
    });
    standIn = await runConsulScenario({
      consulUrl: consulStandIn.address,
      managementToken: consulStandIn.managementToken,
      authMethod: consulStandIn.authMethod,
      serverIdHeaderValue: SERVER_ID,
      roleArn: (role) => aws.role(role).arn,
      bearerToken: (role, opts = {}) => {
        const doc = aws.issueCredentials(role);
        const credentials = { accessKeyId: doc.AccessKeyId, secretAccessKey: doc.SecretAccessKey, sessionToken: doc.Token, principalArn: doc.RoleArn };
        return bearerToken(credentials, aws.url, opts.serverIdHeaderValue ?? SERVER_ID);
      },
    });
  });
  after(async () => {
    await Promise.all([consulStandIn?.stop(), aws?.stop(), consul?.dispose(), moto?.dispose()]);
  });

  it('every call of an ECS task, and every refusal, is answered alike', () => {
    assert.deepEqual(Object.keys(standIn), Object.keys(real));
    for (const name of Object.keys(real)) {
      assert.deepEqual(comparable(standIn[name]!), comparable(real[name]!), `${name}: ${real[name]!.request}`);
    }
  });

  it('the recorded fixtures are what this Consul answers now', () => {
    assert.deepEqual(recordedConsulAnswerNames().sort(), Object.keys(real).sort());
    for (const name of Object.keys(real) as RecordedConsulAnswerName[]) {
      const recorded = { ...recordedConsulAnswer(name) } as RecordedAnswer;
      assert.deepEqual(comparable(recorded), comparable(real[name]!), `${name}: re-record with scripts/fixtures/record-testkit-fixtures.ts`);
    }
  });

  it('the stand-in held what Consul held: the logins went through AWS, the registrations were checked', () => {
    // Two logins as web, one as untrusted, one as untagged; the others are refused before AWS is asked.
    assert.deepEqual({ ...aws.hits }, { getCallerIdentity: 4, getRole: 4, refused: 0 });
    assert.deepEqual(consulStandIn.tokens, []);
    assert.deepEqual(consulStandIn.nodes(), [CLUSTER_ARN, MINIMAL_NODE]);
    assert.deepEqual(consulStandIn.services(CLUSTER_ARN), []);
    assert.deepEqual(
      consulStandIn.services(MINIMAL_NODE).map((s) => s.ID),
      ['minimal-1', 'minimal-proxy-1'],
    );
    assert.deepEqual(
      consulStandIn.checks().map((c) => c.CheckID),
      ['minimal-check'],
    );
  });

  it('GetCallerIdentity and GetRole: the same XML elements, content type and refusals as moto', async () => {
    const role = await moto.admin.createRole({ name: 'xml-shape', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web', team: 'payments' } });
    const motoCreds = await moto.admin.assumeRole(role.arn);
    aws.addRole({ name: 'xml-shape', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web', team: 'payments' } });
    const doc = aws.issueCredentials('xml-shape');
    const standInCreds = { accessKeyId: doc.AccessKeyId, secretAccessKey: doc.SecretAccessKey, sessionToken: doc.Token };
    const send = async (url: string, credentials: AwsCredentials, service: 'sts' | 'iam', tamper = false) => {
      const params: Record<string, string> =
        service === 'sts' ? { Action: 'GetCallerIdentity', Version: STS_API_VERSION } : { Action: 'GetRole', RoleName: 'xml-shape', Version: IAM_API_VERSION };
      const signed = await signQueryRequest({ url: new URL(url), body: formBody(params), region: 'us-east-1', service, credentials });
      if (tamper) signed.headers.Authorization = signed.headers.Authorization!.replace(/Signature=\w+/, `Signature=${'0'.repeat(64)}`);
      const res = await request(signed.url, { method: 'POST', headers: signed.headers, body: signed.body });
      const xml = await res.body.text();
      // The element names, in order, and the text of the error code if any.
      return {
        status: res.statusCode,
        contentType: res.headers['content-type'],
        elements: [...xml.matchAll(/<(\w+)[\s>]/g)].map((m) => m[1]),
        code: /<Code>([^<]*)</.exec(xml)?.[1],
      };
    };
    for (const [service, tamper] of [
      ['sts', false],
      ['iam', false],
      ['sts', true],
      ['iam', true],
    ] as const) {
      assert.deepEqual(
        await send(aws.url, standInCreds, service, tamper),
        await send(moto.url, motoCreds, service, tamper),
        `${service}${tamper ? ', bad signature' : ''}`,
      );
    }
    assert.equal(MOTO_ACCOUNT, aws.account);
  });
});
