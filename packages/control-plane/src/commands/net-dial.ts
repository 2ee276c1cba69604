import { dial, NET_DIAL_FAILED, NET_DIAL_OK, NET_DIAL_USAGE, parseHostPort } from '@consul-ecs-ts/dataplane/net-dial';
import type { Command } from '../command.js';
import { commandHelp } from '../command.js';

export const netDialCommand: Command = {
  name: 'net-dial',
  synopsis: 'Exits 0 if a TCP connection to host:port opens, 2 if not (a health check for images without a shell).',
  usage: 'net-dial <host>:<port>',
  flags: {},
  run: async (ctx) => {
    const target = ctx.argv.length === 1 ? parseHostPort(ctx.argv[0]!) : undefined;
    if (!target) {
      ctx.stderr(`${ctx.argv.length === 1 ? `invalid address "${ctx.argv[0]}"` : 'expected one argument'}\n\n${commandHelp(netDialCommand)}`);
      return NET_DIAL_USAGE;
    }
    return (await dial(target.host, target.port)) ? NET_DIAL_OK : NET_DIAL_FAILED;
  },
};
