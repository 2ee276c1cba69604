import type { Command, CommandContext } from './command.js';
import { loginCommand } from './commands/login.js';
import { logoutCommand } from './commands/logout.js';
import { netDialCommand } from './commands/net-dial.js';
import { versionCommand } from './commands/version.js';

/** Subcommands, named as the hashicorp/consul-ecs image names them. */
export const commands: readonly Command[] = [versionCommand, loginCommand, logoutCommand, netDialCommand];

export function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return (
    'Usage: consul-ecs <command> [flags]\n\nCommands:\n' +
    commands.map((c) => `  ${c.name.padEnd(width)}  ${c.synopsis}`).join('\n') +
    '\n\nRun consul-ecs <command> -help for a command\'s flags.\n'
  );
}

/** Runs `consul-ecs <command> …` and returns the exit code. */
export async function runCli(argv: readonly string[], ctx: Omit<CommandContext, 'argv'>): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '-help' || name === '--help' || name === 'help') {
    (name === undefined ? ctx.stderr : ctx.stdout)(usage());
    return name === undefined ? 1 : 0;
  }
  if (name === '-v' || name === '-version' || name === '--version') return versionCommand.run({ ...ctx, argv: [] });
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    ctx.stderr(`unknown command: ${name}\n\n${usage()}`);
    return 1;
  }
  if (rest.length === 1 && /^--?(h|help)$/.test(rest[0]!)) {
    const { commandHelp } = await import('./command.js');
    ctx.stdout(commandHelp(cmd));
    return 0;
  }
  return cmd.run({ ...ctx, argv: rest });
}
