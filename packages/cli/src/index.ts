export { runCli, commands, usage, type CommandEntry } from './cli.js';
export type { Command, CommandContext } from './command.js';
export { parseFlags, UsageError } from './flags.js';
