import type { Command } from '../command.js';
import { runGuarded } from '../command.js';
import { parseFlags, UsageError } from '../flags.js';

declare const __CONSUL_ECS_VERSION__: string;

/** The version of this build (set at bundle time). */
export const VERSION: string = typeof __CONSUL_ECS_VERSION__ === 'string' ? __CONSUL_ECS_VERSION__ : '0.0.0-dev';

export const versionCommand: Command = {
  name: 'version',
  synopsis: 'Prints the version of consul-ecs.',
  usage: 'version',
  flags: {},
  run: (ctx) =>
    runGuarded(versionCommand, ctx, async () => {
      const { args } = parseFlags(versionCommand.flags, ctx.argv);
      if (args.length) throw new UsageError(`unexpected argument: ${args[0]}`);
      ctx.stdout(`consul-ecs v${VERSION} (TypeScript, node ${process.versions.node})\n`);
      return 0;
    }),
};
