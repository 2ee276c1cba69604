// The AWS SDK's credential providers (`@aws-sdk/credential-providers`:
// fromNodeProviderChain, fromTemporaryCredentials, fromIni…) return an
// AwsCredentialIdentityProvider of @smithy/types. The library takes one wherever
// it takes a CredentialProvider, with no adapter, and its own providers go the
// other way, into an SDK client's `credentials`. The assignments below are
// checked by the type checker: by npx tsc, and by the first test, for npm
// test; the others run an SDK-shaped provider through the library.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import {
  createLoginBearerToken,
  decodeLoginBearerToken,
  fromStaticCredentials,
  refreshing,
  type AwsCredentials,
  type CredentialProvider,
  type LoginInTaskOptions,
  type MeshInitOptions,
} from '@consul-ecs-ts/core';
import { fakeClock } from '../helpers/fake-clock.ts';

const identity: AwsCredentialIdentity = Object.freeze({
  accessKeyId: 'ASIASDKEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN',
  expiration: new Date('2026-01-02T04:04:05Z'),
  accountId: '123456789012',
  credentialScope: 'us-west-2',
});

/** What `fromNodeProviderChain()` and its kin return: an identity provider taking optional identity properties. */
const sdkProvider: AwsCredentialIdentityProvider = async (_properties?: Record<string, unknown>) => identity;

// The SDK's provider and identity are the library's types…
const asOurs: CredentialProvider = sdkProvider;
const asOurCredentials: AwsCredentials = identity;
const inUseCases: Pick<MeshInitOptions, 'credentials'> & Pick<LoginInTaskOptions, 'credentials'> = { credentials: sdkProvider };
// …and the library's providers are the SDK's.
const asSdk: AwsCredentialIdentityProvider = fromStaticCredentials({ accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' });
void [asOurs, asOurCredentials, inUseCases, asSdk];

describe('AWS SDK credential providers', () => {
  it("are assignable to the library's types, and back (type check of this file)", () => {
    const file = fileURLToPath(import.meta.url);
    const config = ts.getParsedCommandLineOfConfigFile(
      fileURLToPath(new URL('../../tsconfig.json', import.meta.url)),
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')),
      },
    );
    const program = ts.createProgram([file], config!.options);
    const problems = ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    assert.deepEqual(problems, []);
  });

  it('sign the login request as given', async () => {
    const clock = fakeClock(Date.parse('2026-01-02T03:04:05Z'));
    const token = await createLoginBearerToken({ credentials: sdkProvider, region: 'us-west-2', clock });
    const sts = decodeLoginBearerToken(token);
    assert.match(sts.headers.Authorization?.[0] ?? '', /Credential=ASIASDKEXAMPLE\/20260102\/us-west-2\/sts\/aws4_request/);
    assert.deepEqual(sts.headers['X-Amz-Security-Token'], [identity.sessionToken]);
  });

  it('are cached until near their expiration by refreshing()', async () => {
    const clock = fakeClock(Date.parse('2026-01-02T03:04:05Z'));
    let calls = 0;
    const counted: AwsCredentialIdentityProvider = async () => {
      calls++;
      return identity;
    };
    const provider = refreshing(counted, { clock });
    assert.equal((await provider()).accessKeyId, identity.accessKeyId);
    await provider();
    assert.equal(calls, 1);
    clock.advance(56 * 60_000); // within 5 minutes of the expiration
    await provider();
    assert.equal(calls, 2);
  });
});
