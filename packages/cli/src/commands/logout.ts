import { aclLogout, ConsulEcsError, describeError, readTokenFile } from '@consul-ecs-ts/core';
import { commandLogger, runGuarded, type Command } from '../command.js';
import { parseFlags, UsageError } from '../flags.js';
import { consulClientFromFlags, consulConnectionFlags } from './consul-flags.js';

const flags = {
  ...consulConnectionFlags,
  'token-file': { type: 'string', usage: 'File holding the ACL token to destroy.', env: 'CONSUL_HTTP_TOKEN_FILE' },
  'log-level': { type: 'string', usage: 'Log level: trace, debug, info, warn, error.', default: 'info' },
} as const;

export const logoutCommand: Command = {
  name: 'logout',
  synopsis: 'Destroys an ACL token made by login.',
  usage: 'logout -token-file <file> [flags]',
  flags,
  run: (ctx) =>
    runGuarded(logoutCommand, ctx, async (log) => {
      const { flags: f, args } = parseFlags(flags, ctx.argv, ctx.env);
      const logger = (log.logger = commandLogger(ctx, f['log-level']));
      if (args.length) throw new UsageError(`unexpected argument: ${args[0]}`);
      const file = f['token-file'];
      let token: string;
      if (file) {
        try {
          token = await readTokenFile(file);
        } catch (err) {
          throw new ConsulEcsError('token-file-unreadable', `cannot read the token file ${file}: ${describeError(err)}`);
        }
        if (!token) throw new ConsulEcsError('token-file-empty', `the token file ${file} is empty`);
      } else if (ctx.env.CONSUL_HTTP_TOKEN) {
        token = ctx.env.CONSUL_HTTP_TOKEN;
      } else {
        throw new UsageError('-token-file is required (or set CONSUL_HTTP_TOKEN)');
      }
      logger.addSecret(token);
      const client = consulClientFromFlags(f, ctx.env, { dispatcher: ctx.dispatcher, clock: ctx.clock });
      try {
        await aclLogout(client, token, { signal: ctx.signal, retryDeadlineMs: 10_000 });
      } catch (err) {
        throw new ConsulEcsError('consul-logout-failed', `could not log out the token${file ? ` in ${file}` : ''}: ${describeError(err)}`, { cause: err });
      } finally {
        await client.close();
      }
      logger.info('logged out of Consul', file ? { 'token-file': file } : undefined);
      return 0;
    }),
};
