import { commandHelp, type Command, type CommandContext } from './command.js';

/**
 * A subcommand: the one table of commands, read by the CLI (usage, signals, V8
 * flags) and by the executable's build (packages/sea: which commands get a code
 * cache). Each is loaded only when it runs.
 */
export interface CommandEntry {
  name: string;
  synopsis: string;
  load: () => Promise<Command>;
  /**
   * Runs for the task's life (health-sync, control-plane, the controller, the
   * entrypoints): it runs without V8's optimising compilers, which would stay in
   * its resident memory (v8-flags.ts).
   */
  longRunning?: boolean;
  /** Copies the executable into the bootstrap dir for the task's other containers. */
  copiesExecutable?: boolean;
  /**
   * The executable carries a V8 code cache of what it runs, made at build time
   * (the short commands; a long-running one would keep the cache in memory for
   * little gain). Others run with `version`'s, the top level every command runs.
   */
  codeCache?: boolean;
  /**
   * The command handles process signals itself (the entrypoints: they ignore or
   * delay SIGTERM and forward other signals), so the process must not turn
   * SIGTERM/SIGINT into `ctx.signal` for it.
   */
  ownsSignals?: boolean;
}

/** Subcommands, named as the hashicorp/consul-ecs image names them. */
export const commands: readonly CommandEntry[] = [
  {
    name: 'version',
    synopsis: 'Prints the version of consul-ecs.',
    load: async () => (await import('./commands/version.js')).versionCommand,
    codeCache: true,
  },
  {
    name: 'login',
    synopsis: "Logs in to Consul with the task's AWS IAM identity and writes the ACL token to a file.",
    load: async () => (await import('./commands/login.js')).loginCommand,
    codeCache: true,
  },
  {
    name: 'logout',
    synopsis: 'Destroys an ACL token made by login.',
    load: async () => (await import('./commands/logout.js')).logoutCommand,
    codeCache: true,
  },
  {
    name: 'mesh-init',
    synopsis: 'Logs in, registers the service and its sidecar (or the gateway) and writes the bootstrap files.',
    load: async () => (await import('./commands/mesh-init.js')).meshInitCommand,
    copiesExecutable: true,
    codeCache: true,
  },
  {
    name: 'health-sync',
    synopsis: 'Syncs ECS container health into Consul; on SIGTERM marks checks critical, deregisters and logs out.',
    load: async () => (await import('./commands/health-sync.js')).healthSyncCommand,
    longRunning: true,
  },
  {
    name: 'control-plane',
    synopsis: 'mesh-init and health-sync in one long-running process.',
    load: async () => (await import('./commands/control-plane.js')).controlPlaneCommand,
    longRunning: true,
    copiesExecutable: true,
  },
  {
    name: 'controller',
    synopsis: 'Sets up the auth method, binding rules and roles in Consul; removes the tokens and services of stopped tasks.',
    load: async () => (await import('./commands/controller.js')).controllerCommand,
    longRunning: true,
  },
  {
    name: 'net-dial',
    synopsis: 'Exits 0 if a TCP connection to host:port opens, 2 if not (a health check for images without a shell).',
    load: async () => (await import('./commands/net-dial.js')).netDialCommand,
    codeCache: true,
  },
  {
    name: 'envoy-entrypoint',
    synopsis: 'Runs Envoy or consul-dataplane; on SIGTERM keeps it running until the application containers stop, then stops it.',
    load: async () => (await import('./commands/envoy-entrypoint.js')).envoyEntrypointCommand,
    longRunning: true,
    ownsSignals: true,
  },
  {
    name: 'app-entrypoint',
    synopsis: 'Runs an application; on SIGTERM waits -shutdown-delay (or until it exits), then stops it.',
    load: async () => (await import('./commands/app-entrypoint.js')).appEntrypointCommand,
    longRunning: true,
    ownsSignals: true,
  },
];

/** The command `name` names (`-v` and `--version` name `version`), if any. */
export function findCommand(name: string | undefined): CommandEntry | undefined {
  return commands.find((c) => c.name === (name !== undefined && /^--?v(ersion)?$/.test(name) ? 'version' : name));
}

export function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return (
    'Usage: consul-ecs <command> [flags]\n\nCommands:\n' +
    commands.map((c) => `  ${c.name.padEnd(width)}  ${c.synopsis}`).join('\n') +
    "\n\nRun consul-ecs <command> -help for a command's flags.\n"
  );
}

/** Runs `consul-ecs <command> …` and returns the exit code. */
export async function runCli(argv: readonly string[], ctx: Omit<CommandContext, 'argv'>): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '-help' || name === '--help' || name === 'help') {
    (name === undefined ? ctx.stderr : ctx.stdout)(usage());
    return name === undefined ? 1 : 0;
  }
  const entry = findCommand(name);
  if (!entry) {
    ctx.stderr(`unknown command: ${name}\n\n${usage()}`);
    return 1;
  }
  const cmd = await entry.load();
  if (rest.length === 1 && /^--?(h|help)$/.test(rest[0]!)) {
    ctx.stdout(commandHelp(cmd));
    return 0;
  }
  return cmd.run({ ...ctx, argv: rest });
}
