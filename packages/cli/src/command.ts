import type { Dispatcher } from 'undici';
import type { Clock } from '@consul-ecs-ts/core';
import { ConsulEcsError, createLogger, describeError, parseLogLevel, type Logger } from '@consul-ecs-ts/core';
import { formatFlags, UsageError, type FlagSpecs } from './flags.js';

/** What a command gets from the process: arguments, environment, output, and a signal for SIGTERM. */
export interface CommandContext {
  argv: string[];
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Aborted when the process gets SIGTERM or SIGINT. */
  signal: AbortSignal;
  /** Dispatcher for all HTTP calls (tests pass a MockAgent). */
  dispatcher?: Dispatcher;
  clock?: Clock;
}

export interface Command {
  name: string;
  synopsis: string;
  flags: FlagSpecs;
  usage: string;
  run(ctx: CommandContext): Promise<number>;
}

export function commandHelp(cmd: Command): string {
  const flags = formatFlags(cmd.flags);
  return `Usage: consul-ecs ${cmd.usage}\n\n  ${cmd.synopsis}\n${flags ? `\nFlags:\n${flags}\n` : ''}`;
}

export function commandLogger(ctx: CommandContext, level?: string): Logger {
  return createLogger({ level: parseLogLevel(level ?? ctx.env.CONSUL_ECS_LOG_LEVEL), write: ctx.stderr });
}

/** The logger a command body uses; it may replace it once it knows the log level. */
export interface LogRef {
  logger: Logger;
}

/**
 * Runs a command body, turning errors into exit codes: usage errors print the
 * command's help and exit 1; other failures print one error line and exit 1.
 */
export async function runGuarded(cmd: Command, ctx: CommandContext, body: (log: LogRef) => Promise<number>): Promise<number> {
  const ref: LogRef = { logger: commandLogger(ctx) };
  try {
    return await body(ref);
  } catch (err) {
    if (err instanceof UsageError) {
      ctx.stderr(`${err.message}\n\n${commandHelp(cmd)}`);
      return 1;
    }
    const log = ref.logger;
    if (ctx.signal.aborted && !(err instanceof ConsulEcsError)) {
      log.error(`${cmd.name} interrupted by a signal before it finished`);
      return 1;
    }
    log.error(`${cmd.name} failed`, { error: describeError(err) });
    return 1;
  }
}
