import type { AwsCredentials } from '../aws/credentials.js';
import { callQueryApi, STS_API_VERSION } from '../aws/query-client.js';
import type { ContainerCredentialsDocument, CredentialsSource } from './ecs-agent-simulator.js';

export interface AssumeRoleSourceOptions {
  /** STS endpoint (e.g. a local AWS emulator). */
  stsEndpoint: string;
  region?: string;
  /** Credentials allowed to assume the role. */
  credentials: AwsCredentials;
  roleArn: string;
  sessionName?: string;
  durationSeconds?: number;
}

/**
 * A credentials source for {@link EcsAgentSimulator} that hands out what
 * `sts:AssumeRole` of the task role returns, as the ECS agent does.
 */
export function assumeRoleCredentials(opts: AssumeRoleSourceOptions): CredentialsSource {
  return async (): Promise<ContainerCredentialsDocument> => {
    const result = await callQueryApi({
      endpoint: new URL(opts.stsEndpoint),
      region: opts.region ?? 'us-east-1',
      service: 'sts',
      action: 'AssumeRole',
      version: STS_API_VERSION,
      params: {
        RoleArn: opts.roleArn,
        RoleSessionName: opts.sessionName ?? 'ecs-task',
        DurationSeconds: String(opts.durationSeconds ?? 3600),
      },
      credentials: opts.credentials,
    });
    const c = result.Credentials as Record<string, string> | undefined;
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`AssumeRole of ${opts.roleArn} returned no credentials`);
    return {
      AccessKeyId: c.AccessKeyId,
      SecretAccessKey: c.SecretAccessKey,
      Token: c.SessionToken,
      Expiration: c.Expiration,
      RoleArn: opts.roleArn,
    };
  };
}
