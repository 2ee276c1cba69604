import { discoverAwsAddresses, type DiscoverAwsOptions } from '../aws/ec2-discover.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { isIP } from 'node:net';
import { parseGoDiscoverArgs, type GoDiscoverCommand } from './go-discover.js';

/** The outcome of running an `exec=` command. `exitCode` is undefined when it could not run. */
export interface ServerAddressCommandResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  /** Why the command did not run to an exit code (e.g. `spawn x ENOENT`, or stopped by the signal). */
  failure?: string;
}

/** Runs `file` with `args`, without a shell. */
export type ServerAddressCommandRunner = (file: string, args: readonly string[], options: { signal?: AbortSignal }) => Promise<ServerAddressCommandResult>;

/** `dns.promises.lookup` with `all: true`. */
export type ServerAddressLookup = (hostname: string, options: { all: true }) => Promise<Array<{ address: string; family: number }>>;

/**
 * `env`, `dispatcher`, `clock`, `credentials` and `pageSize` are for
 * `exec=discover … provider=aws`, which is resolved here (see {@link discoverAwsAddresses}).
 */
export interface ResolveServerAddressesOptions extends DiscoverAwsOptions {
  exec?: ServerAddressCommandRunner;
  lookup?: ServerAddressLookup;
  /** Stops a running `exec=` command, or the EC2 calls of `exec=discover … provider=aws`. */
  signal?: AbortSignal;
}

/** stderr quoted in errors is capped, as go-netaddrs asks of discovery commands. */
const MAX_STDERR = 1024;

/**
 * Resolves `consulServers.hosts` to IP addresses, as consul-ecs does through
 * go-netaddrs (which consul-dataplane also uses on the same string):
 * - an IP address is returned as is;
 * - `exec=<command> [args...]` runs the command, split on whitespace and run
 *   without a shell (no quoting, no variables), and reads whitespace-separated
 *   IP addresses (optionally in double quotes, IPv6 with a `%zone`) from its
 *   stdout; it must exit 0;
 * - but `exec=discover [-q] addrs provider=aws key=value ...` (go-discover's
 *   cloud auto-join, whose `discover` the consul-ecs image ships) runs no
 *   command: the running EC2 instances with the tag are listed here, as
 *   `discover` would list them. For another provider (or `service=ecs`), or
 *   arguments go-discover would refuse, a `discover` on PATH is run as any
 *   command is; when there is none, the error says what to do;
 * - anything else is a DNS name, looked up for all its A and AAAA records.
 */
export async function resolveServerAddresses(hosts: string, options: ResolveServerAddressesOptions = {}): Promise<string[]> {
  const target = hosts.trim();
  if (!target) {
    throw new ConsulEcsError(
      'consul-servers-hosts-empty',
      'consulServers.hosts is empty: set it to a DNS name, an IP address or exec=<command> that prints the Consul server addresses',
    );
  }
  if (isIP(target)) return [target];
  if (target.startsWith('exec=')) return execAddresses(target, options);
  return lookupAddresses(target, options.lookup ?? (process.getBuiltinModule('node:dns/promises').lookup as ServerAddressLookup));
}

async function lookupAddresses(host: string, lookup: ServerAddressLookup): Promise<string[]> {
  let records: Array<{ address: string }>;
  try {
    records = await lookup(host, { all: true });
  } catch (err) {
    throw new ConsulEcsError(
      'consul-servers-lookup-failed',
      `cannot resolve consulServers.hosts "${host}": ${describeError(err)}; check the DNS name, or set an IP address or exec=<command>`,
      { cause: err },
    );
  }
  if (records.length === 0) {
    throw new ConsulEcsError('consul-servers-lookup-failed', `consulServers.hosts "${host}" resolves to no addresses; check its DNS records`);
  }
  return unique(records.map((r) => r.address));
}

async function execAddresses(hosts: string, options: ResolveServerAddressesOptions): Promise<string[]> {
  const [file, ...args] = hosts.slice('exec='.length).trim().split(/\s+/);
  if (file && (file === 'discover' || file.endsWith('/discover'))) return goDiscoverAddresses(hosts, file, args, options);
  return commandAddresses(hosts, file ?? '', args, options);
}

/**
 * `exec=discover …`: go-discover's arguments; `provider=aws` (EC2) resolved
 * here, any other provider by the `discover` command, which must then be on PATH.
 */
async function goDiscoverAddresses(hosts: string, file: string, args: string[], options: ResolveServerAddressesOptions): Promise<string[]> {
  const shown = redactSecrets(hosts);
  let command: GoDiscoverCommand;
  try {
    command = parseGoDiscoverArgs(args);
  } catch (err) {
    // What go-discover's discover would answer is its own: ask it, if there is one.
    return commandAddresses(hosts, file, args, options, () => {
      throw new ConsulEcsError('consul-servers-discover-invalid', `consulServers.hosts "${shown}" prints no addresses: ${(err as Error).message}`, {
        cause: err,
      });
    });
  }
  const { config } = command;
  if (config.provider !== 'aws' || config.service === 'ecs') {
    const which = config.provider === 'aws' ? 'provider=aws service=ecs' : `provider=${config.provider}`;
    return commandAddresses(hosts, file, args, options, () => {
      throw new ConsulEcsError(
        'consul-servers-discover-failed',
        `consulServers.hosts "${shown}" needs go-discover's discover command for ${which}, and there is none on PATH: ` +
          "put go-discover's discover on PATH, or use provider=aws (EC2 instances by tag), which consul-ecs resolves itself",
      );
    });
  }

  let addresses: string[];
  try {
    addresses = await discoverAwsAddresses(config, options);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'consul-servers-discover-invalid') {
      throw new ConsulEcsError('consul-servers-discover-invalid', `consulServers.hosts "${shown}": ${(err as Error).message}`, { cause: err });
    }
    throw new ConsulEcsError('consul-servers-discover-failed', `consulServers.hosts "${shown}" found no Consul servers: ${describeError(err)}`, { cause: err });
  }
  if (addresses.length === 0) {
    const addrType = ['public_v4', 'public_v6'].includes(config.addr_type ?? '') ? config.addr_type : 'private_v4';
    throw new ConsulEcsError(
      'consul-servers-discover-failed',
      `consulServers.hosts "${shown}" found no Consul servers: no running EC2 instance${config.region ? ` in ${config.region}` : ''} ` +
        `with the tag ${config.tag_key}=${config.tag_value ?? ''} has a ${addrType} address`,
    );
  }
  return unique(addresses);
}

/** go-discover's secret keys, whose values are not repeated in errors and logs. */
const SECRET_KEYS = /\b(secret_access_key|session_token)=("(?:[^"\\]|\\.)*"?|\S*)/g;

function redactSecrets(hosts: string): string {
  return hosts.replace(SECRET_KEYS, '$1=(redacted)');
}

/** Runs an exec= command; `notFound` reports one that does not exist. */
async function commandAddresses(
  hosts: string,
  file: string,
  args: string[],
  options: ResolveServerAddressesOptions,
  notFound?: () => never,
): Promise<string[]> {
  const fail = (why: string): never => {
    throw new ConsulEcsError(
      'consul-servers-exec-failed',
      `consulServers.hosts "${redactSecrets(hosts)}" failed: ${why}; the command must print the Consul server IP addresses on stdout and exit 0`,
    );
  };
  if (!file) fail('no command after exec=');

  const run = options.exec ?? runCommand;
  let result: ServerAddressCommandResult;
  try {
    result = await run(file, args, options.signal ? { signal: options.signal } : {});
  } catch (err) {
    return fail(`it did not finish: ${describeError(err)}`);
  }
  if (result.exitCode === undefined && notFound && /\bENOENT\b/.test(result.failure ?? '')) notFound();
  if (result.exitCode === undefined) return fail(`it did not finish: ${result.failure ?? 'no exit code'}`);
  if (result.exitCode !== 0) {
    const stderr = result.stderr.trim().slice(0, MAX_STDERR);
    return fail(`it exited with code ${result.exitCode}${stderr ? `: ${stderr}` : ' and printed nothing on stderr'}`);
  }

  const printed = result.stdout.split(/\s+/).filter(Boolean);
  if (printed.length === 0) return fail('it printed no addresses on stdout');
  const addresses = printed.map((word) => word.replace(/^"(.*)"$/s, '$1'));
  const invalid = addresses.find((address) => !isIP(address.split('%')[0]!));
  if (invalid !== undefined) return fail(`it printed "${invalid.slice(0, 100)}", which is not an IP address`);
  return unique(addresses);
}

/**
 * Runs a command with execa (loaded on first use), never rejecting. On abort
 * the command is killed and the result returned at once, even if a child it
 * started still holds its stdout open.
 */
const runCommand: ServerAddressCommandRunner = async (file, args, { signal }) => {
  const { execa } = await import('execa');
  const subprocess = execa(file, args, { reject: false, stdin: 'ignore', ...(signal ? { cancelSignal: signal } : {}) });
  const finished = subprocess.then((result): ServerAddressCommandResult => ({
    exitCode: result.isCanceled ? undefined : result.exitCode,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    ...(result.isCanceled || result.exitCode === undefined ? { failure: result.originalMessage || result.shortMessage || 'no exit code' } : {}),
  }));
  if (!signal) return finished;
  let onAbort = (): void => {};
  const stopped = new Promise<ServerAddressCommandResult>((resolve) => {
    onAbort = () => resolve({ exitCode: undefined, stdout: '', stderr: '', failure: `stopped (${describeError(signal.reason)})` });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([finished, stopped]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
};

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
