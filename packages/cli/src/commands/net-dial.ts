import { dial, NET_DIAL_FAILED, NET_DIAL_OK, NET_DIAL_USAGE, parseHostPort } from '@consul-ecs-ts/entrypoints';
import type { Command } from '../command.js';
import { commandHelp } from '../command.js';

export const netDialCommand: Command = {
  name: 'net-dial',
  synopsis: 'Exits 0 if a TCP connection to host:port opens, 2 if not (a health check for images without a shell).',
  usage: 'net-dial <host>:<port>',
  flags: {},
  run: async (ctx) => {
    if (ctx.argv.length !== 1) {
      ctx.stderr(`expected one argument\n\n${commandHelp(netDialCommand)}`);
      return NET_DIAL_USAGE;
    }
    const target = parseHostPort(ctx.argv[0]!);
    if (!target) {
      // As consul-ecs's: an address that cannot be dialled is a failed dial.
      ctx.stderr(`cannot dial "${ctx.argv[0]}": expected <host>:<port> with a port from 1 to 65535\n`);
      return NET_DIAL_FAILED;
    }
    return (await dial(target.host, target.port)) ? NET_DIAL_OK : NET_DIAL_FAILED;
  },
};
