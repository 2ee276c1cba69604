import { DEFAULT_AUTH_METHOD, loginInTask } from '@consul-ecs-ts/core';
import { commandLogger, runGuarded, type Command } from '../command.js';
import { parseFlags, parseKeyValues, UsageError } from '../flags.js';
import { consulClientFromFlags, consulConnectionFlags } from './consul-flags.js';

const flags = {
  ...consulConnectionFlags,
  type: { type: 'string', usage: 'The auth method type; only aws-iam is supported.', default: 'aws-iam' },
  method: { type: 'string', usage: 'Name of the auth method to log in to.', default: DEFAULT_AUTH_METHOD },
  partition: { type: 'string', usage: 'Admin partition of the auth method (Enterprise).', env: 'CONSUL_PARTITION' },
  namespace: { type: 'string', usage: 'Namespace of the auth method (Enterprise).', env: 'CONSUL_NAMESPACE' },
  datacenter: { type: 'string', usage: "Datacenter to log in to; the server's own by default." },
  meta: { type: 'list', usage: 'Metadata key=value to set on the token; repeatable.' },
  'token-sink-file': { type: 'string', usage: 'File to write the ACL token to (required).' },
  'token-sink-mode': { type: 'string', usage: 'Octal file mode of the token sink file.', default: '0600' },
  'aws-region': { type: 'string', usage: "Region to sign STS requests for; AWS_REGION, then the task's region by default." },
  'aws-sts-endpoint': { type: 'string', usage: 'URL of the STS endpoint to sign requests for.' },
  'aws-iam-endpoint': { type: 'string', usage: 'URL of the IAM endpoint to sign the GetRole/GetUser request for.' },
  'aws-include-entity': {
    type: 'bool',
    usage: "Include a signed iam:GetRole/GetUser request so the auth method can read the role's path and tags.",
    default: true,
  },
  'aws-server-id-header-value': { type: 'string', usage: 'Value of the X-Consul-IAM-ServerID header to sign into the requests.' },
  'aws-auto-bearer-token': {
    type: 'bool',
    usage: 'Accepted for compatibility with consul login; the bearer token is always made automatically.',
    default: true,
  },
  'aws-access-key-id': { type: 'string', usage: 'AWS access key id; the task role (or AWS_* environment) by default.' },
  'aws-secret-access-key': { type: 'string', usage: 'AWS secret access key, with -aws-access-key-id.' },
  'aws-session-token': { type: 'string', usage: 'AWS session token, with -aws-access-key-id.' },
  'task-meta': {
    type: 'bool',
    usage: 'Read ECS task metadata (ECS_CONTAINER_METADATA_URI_V4) for the task-id and cluster meta and the region.',
    default: true,
  },
  timeout: { type: 'string', usage: 'How long to keep retrying while Consul is unreachable, in seconds.', default: '120' },
  'log-level': { type: 'string', usage: 'Log level: trace, debug, info, warn, error.', default: 'info' },
} as const;

export const loginCommand: Command = {
  name: 'login',
  synopsis: "Logs in to Consul with the task's AWS IAM identity and writes the ACL token to a file.",
  usage: 'login [flags]',
  flags,
  run: (ctx) =>
    runGuarded(loginCommand, ctx, async (log) => {
      const { flags: f, args } = parseFlags(flags, ctx.argv, ctx.env);
      const logger = (log.logger = commandLogger(ctx, f['log-level']));
      if (args.length) throw new UsageError(`unexpected argument: ${args[0]}`);
      if (f.type !== 'aws-iam') throw new UsageError(`-type ${f.type} is not supported; only aws-iam`);
      const sink = f['token-sink-file'];
      if (!sink) throw new UsageError('-token-sink-file is required');
      const mode = Number.parseInt(f['token-sink-mode'] ?? '0600', 8);
      if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new UsageError(`-token-sink-mode ${f['token-sink-mode']} is not an octal file mode`);
      const timeoutSec = Number(f.timeout);
      if (!Number.isFinite(timeoutSec) || timeoutSec < 0) throw new UsageError(`-timeout ${f.timeout} is not a number of seconds`);
      const meta = parseKeyValues(f.meta, 'meta');

      const keyId = f['aws-access-key-id'];
      const client = consulClientFromFlags(f, ctx.env, { dispatcher: ctx.dispatcher, clock: ctx.clock });
      try {
        await loginInTask({
          env: keyId
            ? { ...ctx.env, AWS_ACCESS_KEY_ID: keyId, AWS_SECRET_ACCESS_KEY: f['aws-secret-access-key'], AWS_SESSION_TOKEN: f['aws-session-token'] }
            : ctx.env,
          client,
          authMethod: f.method,
          region: f['aws-region'],
          readTaskMetadata: f['task-meta'],
          stsEndpoint: f['aws-sts-endpoint'],
          iamEndpoint: f['aws-iam-endpoint'],
          includeEntity: f['aws-include-entity'],
          serverIdHeaderValue: f['aws-server-id-header-value'],
          meta,
          namespace: f.namespace,
          partition: f.partition,
          datacenter: f.datacenter,
          tokenSinkFile: sink,
          tokenSinkMode: mode,
          deadlineMs: timeoutSec * 1000,
          dispatcher: ctx.dispatcher,
          clock: ctx.clock,
          logger,
          signal: ctx.signal,
        });
      } finally {
        await client.close();
      }
      return 0;
    }),
};
