import { ConsulEcsError } from '../util/errors.js';

/** An IAM principal as named by an ARN from `sts:GetCallerIdentity`. */
export interface IamPrincipal {
  partition: string;
  account: string;
  /** `role` and `assumed-role` are looked up with `iam:GetRole`, `user` with `iam:GetUser`. */
  type: 'role' | 'assumed-role' | 'user';
  /** Role or user name, without its path. */
  name: string;
  /** For assumed roles, the session name. */
  sessionName?: string;
}

/**
 * Parses `arn:aws:iam::123456789012:role/path/name`, `…:user/path/name` and
 * `arn:aws:sts::123456789012:assumed-role/name/session`.
 */
export function parsePrincipalArn(arn: string): IamPrincipal {
  const parts = arn.split(':');
  if (parts.length < 6 || parts[0] !== 'arn') {
    throw new ConsulEcsError('aws-arn-invalid', `"${arn}" is not an ARN (expected arn:partition:service::account:resource)`);
  }
  const [, partition = '', service = '', , account = ''] = parts;
  const resource = parts.slice(5).join(':');
  const segments = resource.split('/');
  const kind = segments[0];
  if (service === 'sts' && kind === 'assumed-role' && segments.length >= 3) {
    return { partition, account, type: 'assumed-role', name: segments[1]!, sessionName: segments.slice(2).join('/') };
  }
  if (service === 'iam' && (kind === 'role' || kind === 'user') && segments.length >= 2) {
    return { partition, account, type: kind, name: segments[segments.length - 1]! };
  }
  throw new ConsulEcsError('aws-arn-unsupported', `IAM principal ${arn} is neither a role, an assumed role nor a user; log in with an IAM role or user`);
}

/** The fields of an ECS task ARN `arn:aws:ecs:<region>:<account>:task/<cluster>/<taskId>`. */
export interface TaskArn {
  partition: string;
  region: string;
  account: string;
  /** Cluster name; absent in old-format task ARNs (`task/<taskId>`). */
  cluster?: string;
  taskId: string;
}

export function parseTaskArn(arn: string): TaskArn {
  const parts = arn.split(':');
  const resource = parts.slice(5).join(':').split('/');
  if (parts.length < 6 || parts[0] !== 'arn' || parts[2] !== 'ecs' || resource[0] !== 'task' || resource.length < 2) {
    throw new ConsulEcsError('ecs-task-arn-invalid', `task ARN "${arn}" is not of the form arn:aws:ecs:<region>:<account>:task/<cluster>/<taskId>`);
  }
  const taskId = resource[resource.length - 1]!;
  const out: TaskArn = { partition: parts[1]!, region: parts[3]!, account: parts[4]!, taskId };
  if (resource.length >= 3) out.cluster = resource.slice(1, -1).join('/');
  return out;
}
