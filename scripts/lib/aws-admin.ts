// Administration of the local AWS emulator (moto) for tests, the demo and the
// benchmarks: IAM roles for ECS tasks and AssumeRole, and ECS clusters and
// tasks, and EC2 instances, through core's signed Query and JSON API clients.
import { callEc2Api, callJsonApi, callQueryApi, IAM_API_VERSION, STS_API_VERSION, type AwsCredentials, type EcsTask } from '@consul-ecs-ts/core';

export const SERVICE_NAME_TAG = 'consul.hashicorp.com.service-name';

export interface RoleSpec {
  name: string;
  /** IAM path, e.g. `/consul-ecs/`. */
  path?: string;
  tags?: Record<string, string>;
  /** Allow `iam:GetRole` on the role itself (what the auth method needs). Default true. */
  allowGetRole?: boolean;
  /** More actions the role may take on any resource (e.g. `ecs:ListTasks` for the controller). */
  allowActions?: string[];
}

export interface Role {
  name: string;
  arn: string;
  roleId: string;
}

export class AwsAdmin {
  constructor(
    readonly endpoint: string,
    readonly credentials: AwsCredentials,
    readonly account: string,
    /** The IAM user behind `credentials`, trusted by the roles this creates. */
    readonly principalArn = `arn:aws:iam::${account}:user/admin`,
    readonly region = 'us-east-1',
  ) {}

  call(service: 'iam' | 'sts', action: string, params: Record<string, string> = {}): Promise<Record<string, unknown>> {
    return callQueryApi({
      endpoint: new URL(this.endpoint),
      region: this.region,
      service,
      action,
      version: service === 'iam' ? IAM_API_VERSION : STS_API_VERSION,
      params,
      credentials: this.credentials,
    });
  }

  /**
   * Creates a task role that the admin user may assume (standing in for the ECS
   * agent, which assumes it for `ecs-tasks.amazonaws.com`; moto cannot evaluate
   * service principals in trust policies).
   */
  async createRole(spec: RoleSpec): Promise<Role> {
    const trust = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { AWS: this.principalArn }, Action: 'sts:AssumeRole' }],
    };
    const params: Record<string, string> = {
      RoleName: spec.name,
      Path: spec.path ?? '/',
      AssumeRolePolicyDocument: JSON.stringify(trust),
    };
    Object.entries(spec.tags ?? {}).forEach(([k, v], i) => {
      params[`Tags.member.${i + 1}.Key`] = k;
      params[`Tags.member.${i + 1}.Value`] = v;
    });
    const result = await this.call('iam', 'CreateRole', params);
    const role = result.Role as Record<string, string>;
    if (spec.allowGetRole ?? true) {
      await this.call('iam', 'PutRolePolicy', {
        RoleName: spec.name,
        PolicyName: 'get-self',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'iam:GetRole', Resource: role.Arn }],
        }),
      });
    }
    if (spec.allowActions?.length) {
      await this.call('iam', 'PutRolePolicy', {
        RoleName: spec.name,
        PolicyName: 'actions',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: spec.allowActions, Resource: '*' }],
        }),
      });
    }
    return { name: spec.name, arn: String(role.Arn), roleId: String(role.RoleId) };
  }

  /** Deletes a role and its inline policies. */
  async deleteRole(name: string): Promise<void> {
    const listed = await this.call('iam', 'ListRolePolicies', { RoleName: name });
    const names = ((listed.PolicyNames as { member?: string[] } | undefined)?.member ?? []) as string[];
    for (const policy of names) await this.call('iam', 'DeleteRolePolicy', { RoleName: name, PolicyName: policy });
    await this.call('iam', 'DeleteRole', { RoleName: name });
  }

  async assumeRole(roleArn: string, sessionName = 'ecs-task', durationSeconds = 3600): Promise<Required<Omit<AwsCredentials, 'principalArn'>>> {
    const result = await this.call('sts', 'AssumeRole', {
      RoleArn: roleArn,
      RoleSessionName: sessionName,
      DurationSeconds: String(durationSeconds),
    });
    const c = result.Credentials as Record<string, string>;
    return {
      accessKeyId: c.AccessKeyId!,
      secretAccessKey: c.SecretAccessKey!,
      sessionToken: c.SessionToken!,
      expiration: new Date(c.Expiration!),
    };
  }

  /** An ECS API call (JSON 1.1) as the admin user. */
  ecs<T = Record<string, unknown>>(operation: string, body: Record<string, unknown>): Promise<T> {
    return callJsonApi<T>({
      endpoint: new URL(this.endpoint),
      region: this.region,
      service: 'ecs',
      target: `AmazonEC2ContainerServiceV20141113.${operation}`,
      body,
      credentials: this.credentials,
    });
  }

  /** Creates an ECS cluster; returns its ARN. */
  async createCluster(name: string): Promise<string> {
    const out = await this.ecs<{ cluster: { clusterArn: string } }>('CreateCluster', { clusterName: name });
    return out.cluster.clusterArn;
  }

  /**
   * Runs `count` Fargate tasks of a one-container task definition of `family`
   * (registered on the way) with the given tags; returns them.
   */
  async runTasks(cluster: string, family: string, opts: { count?: number; tags?: Record<string, string> } = {}): Promise<EcsTask[]> {
    const def = await this.ecs<{ taskDefinition: { taskDefinitionArn: string } }>('RegisterTaskDefinition', {
      family,
      // Not awsvpc: moto would then want a VPC subnet for each task's network interface.
      networkMode: 'bridge',
      containerDefinitions: [{ name: 'app', image: 'app:latest', memory: 128 }],
    });
    const out = await this.ecs<{ tasks: EcsTask[]; failures?: unknown[] }>('RunTask', {
      cluster,
      taskDefinition: def.taskDefinition.taskDefinitionArn,
      launchType: 'FARGATE',
      count: opts.count ?? 1,
      tags: Object.entries(opts.tags ?? {}).map(([key, value]) => ({ key, value })),
    });
    return out.tasks;
  }

  async stopTask(cluster: string, taskArn: string): Promise<void> {
    await this.ecs('StopTask', { cluster, task: taskArn, reason: 'test' });
  }

  /** An EC2 API action; the `<ActionResponse>` element, its lists as arrays of `item`. */
  ec2(action: string, params: Record<string, string> = {}): Promise<Record<string, unknown>> {
    return callEc2Api({ endpoint: new URL(this.endpoint), region: this.region, action, params, credentials: this.credentials });
  }

  /**
   * Launches `count` EC2 instances in one reservation, tagged with `tags`, from an
   * AMI moto knows (with `privateIp`, one instance at that address); their ids and
   * private IPv4 addresses, in launch order.
   */
  async runInstances(count: number, tags: Record<string, string> = {}, opts: { privateIp?: string } = {}): Promise<Array<{ id: string; privateIp: string }>> {
    const params: Record<string, string> = { ImageId: 'ami-12c6146b', InstanceType: 't3.micro', MinCount: String(count), MaxCount: String(count) };
    if (opts.privateIp) params.PrivateIpAddress = opts.privateIp;
    Object.entries(tags).forEach(([k, v], i) => {
      params['TagSpecification.1.ResourceType'] = 'instance';
      params[`TagSpecification.1.Tag.${i + 1}.Key`] = k;
      params[`TagSpecification.1.Tag.${i + 1}.Value`] = v;
    });
    const out = await this.ec2('RunInstances', params);
    const instances = (out.instancesSet as { item?: Array<Record<string, string>> } | undefined)?.item ?? [];
    return instances.map((i) => ({ id: i.instanceId!, privateIp: i.privateIpAddress! }));
  }

  async stopInstances(ids: string[]): Promise<void> {
    const params: Record<string, string> = {};
    ids.forEach((id, i) => (params[`InstanceId.${i + 1}`] = id));
    await this.ec2('StopInstances', params);
  }
}
