import { accessSync, constants as fsConstants, readFileSync, realpathSync } from 'node:fs';
import { basename, delimiter, dirname, isAbsolute, join } from 'node:path';
import { ConsulEcsError } from '@consul-ecs-ts/core';

/**
 * The name consul-ecs answers to in the dataplane image, where `consul-dataplane`
 * on PATH is a link to the task's copy of consul-ecs. terraform-aws-consul-ecs runs
 * the dataplane container as `envoy-entrypoint consul-dataplane -config-file <file>`
 * whatever its image; with this image that runs Envoy from the bootstrap mesh-init
 * wrote beside the file.
 */
export const CONSUL_DATAPLANE_NAME = 'consul-dataplane';

/** The Envoy bootstrap mesh-init writes beside consul-dataplane.json. */
export const ENVOY_BOOTSTRAP_FILE = 'envoy-bootstrap.json';

export interface DataplaneStandInOptions {
  env: Record<string, string | undefined>;
  /** This process's executable. Default `process.execPath`. */
  execPath?: string;
}

/** The file `command` runs: itself when it names a path, else the first match on PATH. */
function resolveOnPath(command: string, env: Record<string, string | undefined>): string | undefined {
  const candidates = command.includes('/') ? [command] : (env.PATH ?? '').split(delimiter).map((dir) => join(dir || '.', command));
  for (const file of candidates) {
    try {
      accessSync(file, fsConstants.X_OK);
      return realpathSync(file);
    } catch {
      // not here; the next one
    }
  }
  return undefined;
}

/** The value of `-config-file` (consul-dataplane's flag syntax: one or two dashes, `=` or a separate argument). */
function configFileFlag(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const m = /^--?config-file(?:=(.*))?$/.exec(args[i]!);
    if (m) return m[1] ?? args[i + 1];
  }
  return undefined;
}

/** Envoy's log level for consul-dataplane.json's `logging.logLevel`, when it names one Envoy knows. */
function envoyLogLevel(configFile: string): string | undefined {
  try {
    const level = (JSON.parse(readFileSync(configFile, 'utf8')) as { logging?: { logLevel?: unknown } }).logging?.logLevel;
    const lower = typeof level === 'string' ? level.toLowerCase() : '';
    return ['trace', 'debug', 'info', 'warn', 'error', 'critical', 'off'].includes(lower) ? lower : lower === 'warning' ? 'warn' : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When `command` runs consul-dataplane and the `consul-dataplane` it would run is
 * this executable (the dataplane image's link), the Envoy command to run in its
 * place: `envoy -c <config dir>/envoy-bootstrap.json`, at consul-dataplane.json's
 * log level. Otherwise undefined: the command runs as given (the real
 * consul-dataplane, or Envoy).
 */
export function envoyInPlaceOfConsulDataplane(command: readonly string[], opts: DataplaneStandInOptions): string[] | undefined {
  const [program, ...args] = command;
  if (program === undefined || basename(program) !== CONSUL_DATAPLANE_NAME) return undefined;
  const resolved = resolveOnPath(program, opts.env);
  if (resolved === undefined || resolved !== realpathSync(opts.execPath ?? process.execPath)) return undefined;
  const configFile = configFileFlag(args);
  if (!configFile || !isAbsolute(configFile)) {
    throw new ConsulEcsError(
      'command-start-failed',
      `consul-dataplane here is consul-ecs, which runs Envoy from the ${ENVOY_BOOTSTRAP_FILE} beside consul-dataplane's config file: ` +
        `give it as an absolute path with -config-file (got ${configFile === undefined ? 'none' : JSON.stringify(configFile)})`,
    );
  }
  const level = envoyLogLevel(configFile);
  return ['envoy', '-c', join(dirname(configFile), ENVOY_BOOTSTRAP_FILE), '--disable-hot-restart', ...(level ? ['--log-level', level] : [])];
}
