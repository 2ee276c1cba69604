import { ConsulEcsError, describeError } from '../util/errors.js';
import { isIP } from 'node:net';

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

export interface ResolveServerAddressesOptions {
  exec?: ServerAddressCommandRunner;
  lookup?: ServerAddressLookup;
  /** Stops a running `exec=` command. */
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
  const fail = (why: string): never => {
    throw new ConsulEcsError(
      'consul-servers-exec-failed',
      `consulServers.hosts "${hosts}" failed: ${why}; the command must print the Consul server IP addresses on stdout and exit 0`,
    );
  };
  if (!file) fail('no command after exec=');

  const run = options.exec ?? runCommand;
  let result: ServerAddressCommandResult;
  try {
    result = await run(file!, args, options.signal ? { signal: options.signal } : {});
  } catch (err) {
    return fail(`it did not finish: ${describeError(err)}`);
  }
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
