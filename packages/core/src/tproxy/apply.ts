import { writeFileAtomic } from '../io/atomic-file.js';
import { open, readFile, stat } from 'node:fs/promises';
import { ConsulEcsError, describeError, type ConsulEcsErrorCode } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { consulDnsResolvConf, resolvConfNameservers, RESOLV_CONF_MAX_NAMESERVERS } from './dns.js';
import { formatIptablesRule, iptablesArgv, type IptablesRule } from './iptables.js';
import type { IoOptions } from '../util/options.js';

/** What one iptables run returned. */
export interface IptablesRunResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs one command. Rejects only when it cannot start (the error's `code`,
 * e.g. ENOENT, tells why); a non-zero exit resolves with its exit code.
 */
export type IptablesRunner = (command: string, args: string[]) => Promise<IptablesRunResult>;

/** Spawns the command directly (no shell) and collects its output. */
export const spawnIptablesRunner: IptablesRunner = async (command, args) => {
  // Loaded on first use: most commands never spawn anything.
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ exitCode: code, stdout, stderr: signal ? `${stderr}killed by ${signal}` : stderr }));
  });
};

export interface ApplyTransparentProxyOptions extends Pick<IoOptions, 'logger'> {
  /** Runs `iptables`. Default: spawn it from PATH. Tests run it in another network namespace. */
  run?: IptablesRunner;
  /** The iptables executable. Default 'iptables'. */
  iptablesCommand?: string;
  /**
   * When set, resolv.conf is rewritten (after the rules are in place) with this
   * address as the first nameserver: Consul DNS through the dataplane's DNS proxy.
   */
  dnsNameserver?: string;
  /** Default '/etc/resolv.conf'. */
  resolvConfPath?: string;
}

export interface ApplyTransparentProxyResult {
  /** The rules that ran, in order (all of them). */
  applied: IptablesRule[];
  resolvConf?: { path: string; changed: boolean; nameservers: string[] };
}

/** Failure to apply the rules; says which ran before it. */
export class TransparentProxyError extends ConsulEcsError {
  /** Rules that ran successfully before the failure, and remain in place. */
  readonly applied: IptablesRule[];
  /** The rule that failed, if a rule failed. */
  readonly failedRule: IptablesRule | undefined;
  /** What iptables printed, or why it could not start. */
  readonly output: string;

  constructor(
    code: Extract<ConsulEcsErrorCode, `tproxy-${string}`>,
    message: string,
    details: { applied: IptablesRule[]; failedRule?: IptablesRule; output: string; cause?: unknown },
  ) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'TransparentProxyError';
    this.applied = details.applied;
    this.failedRule = details.failedRule;
    this.output = details.output;
  }
}

const NOT_PERMITTED_ADVICE =
  'transparent proxy changes the task network namespace, so mesh-init must run as root (container user "0") with the NET_ADMIN Linux capability ' +
  '(linuxParameters.capabilities.add ["NET_ADMIN"]) on the ECS EC2 launch type with awsvpc networking; ' +
  'transparent proxy is not supported on Fargate: set transparentProxy.enabled to false there';

const PERMISSION_TEXT = /permission denied|you must be root|can't initialize iptables table|operation not permitted|\bEPERM\b|\bEACCES\b/i;

/**
 * Applies the rules in order with the real iptables, then (when asked) points
 * resolv.conf at Consul DNS. Stops at the first failing rule and throws a
 * TransparentProxyError naming that rule, the table, iptables's output, and the
 * rules already applied (they are not rolled back: in ECS a failed mesh-init
 * fails the task, whose network namespace goes away with it).
 *
 * Codes: `tproxy-not-permitted` (iptables missing, or no root/NET_ADMIN),
 * `tproxy-already-applied` (the chains exist: the rules ran before in this
 * namespace), `tproxy-rule-failed` (anything else), `tproxy-dns-failed`.
 */
export async function applyTransparentProxy(rules: readonly IptablesRule[], opts: ApplyTransparentProxyOptions = {}): Promise<ApplyTransparentProxyResult> {
  const run = opts.run ?? spawnIptablesRunner;
  const command = opts.iptablesCommand ?? 'iptables';
  const applied: IptablesRule[] = [];
  // Check the nameserver before changing anything.
  if (opts.dnsNameserver !== undefined) consulDnsResolvConf('', opts.dnsNameserver);

  for (const [i, rule] of rules.entries()) {
    const where = `rule ${i + 1} of ${rules.length} (${formatIptablesRule(rule, command)}) in the ${rule.table} table`;
    let result: IptablesRunResult;
    try {
      result = await run(command, iptablesArgv(rule));
    } catch (err) {
      const errno = (err as { code?: unknown }).code;
      const missing = errno === 'ENOENT';
      const why = missing ? `${command} was not found on PATH` : `${command} could not be started: ${describeError(err)}`;
      const advice = missing ? `install iptables in the mesh-init image (the consul-ecs image includes it); ${NOT_PERMITTED_ADVICE}` : NOT_PERMITTED_ADVICE;
      throw new TransparentProxyError(
        'tproxy-not-permitted',
        `cannot apply transparent proxy ${where}: ${why}. ${appliedText(applied, command)} To fix: ${advice}`,
        { applied: [...applied], failedRule: rule, output: describeError(err), cause: err },
      );
    }
    if (result.exitCode === 0) {
      applied.push(rule);
      opts.logger?.debug('applied iptables rule', { rule: formatIptablesRule(rule, command) });
      continue;
    }

    const output = (result.stderr.trim() || result.stdout.trim() || '(no output)').replace(/\s*\n\s*/g, ' / ').replace(/\.+$/, '');
    const status = result.exitCode === null ? 'was killed' : `exited ${result.exitCode}`;
    const failure = { applied: [...applied], failedRule: rule, output };
    if (/chain already exists/i.test(output)) {
      throw new TransparentProxyError(
        'tproxy-already-applied',
        `cannot apply transparent proxy ${where}: iptables ${status}: ${output}. ${appliedText(applied, command)} ` +
          'The transparent proxy chains already exist in this network namespace: mesh-init ran before in this task; ' +
          'start a new task (or delete the CONSUL_* chains of the nat table) to apply them again',
        failure,
      );
    }
    if (/xtables lock/i.test(output)) {
      throw new TransparentProxyError(
        'tproxy-rule-failed',
        `cannot apply transparent proxy ${where}: iptables ${status}: ${output}. ${appliedText(applied, command)} ` +
          'Another program held the iptables lock; retry the task',
        failure,
      );
    }
    if (PERMISSION_TEXT.test(output) || result.exitCode === 3 || result.exitCode === 4) {
      throw new TransparentProxyError(
        'tproxy-not-permitted',
        `cannot apply transparent proxy ${where}: iptables ${status}, not permitted: ${output}. ${appliedText(applied, command)} To fix: ${NOT_PERMITTED_ADVICE}`,
        failure,
      );
    }
    throw new TransparentProxyError(
      'tproxy-rule-failed',
      `cannot apply transparent proxy ${where}: iptables ${status}: ${output}. ${appliedText(applied, command)} ` +
        'Check that the host kernel has the iptables nat table and the owner match (xt_owner) and REDIRECT/DNAT targets',
      failure,
    );
  }
  opts.logger?.info('applied transparent proxy traffic redirection rules', { rules: applied.length });

  const result: ApplyTransparentProxyResult = { applied };
  if (opts.dnsNameserver !== undefined) {
    result.resolvConf = await writeConsulResolvConf(opts.resolvConfPath ?? '/etc/resolv.conf', opts.dnsNameserver, applied, opts.logger);
  }
  return result;
}

function appliedText(applied: readonly IptablesRule[], command: string): string {
  if (applied.length === 0) return 'No rule was applied before it.';
  return `${applied.length} rule(s) were applied before it and remain in place: ${applied.map((r) => formatIptablesRule(r, command)).join('; ')}.`;
}

async function writeConsulResolvConf(
  path: string,
  nameserver: string,
  applied: IptablesRule[],
  logger: Logger | undefined,
): Promise<{ path: string; changed: boolean; nameservers: string[] }> {
  const fail = (what: string, err: unknown): never => {
    throw new TransparentProxyError(
      'tproxy-dns-failed',
      `cannot configure Consul DNS: ${what} ${path}: ${describeError(err)}. ` +
        `All ${applied.length} transparent proxy rules were applied; only resolv.conf is unchanged. ` +
        'mesh-init must run as root to rewrite the task resolv.conf',
      { applied: [...applied], output: describeError(err), cause: err },
    );
  };

  let existing = '';
  let mode = 0o644;
  try {
    existing = await readFile(path, 'utf8');
    mode = (await stat(path)).mode & 0o7777;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOENT') fail('cannot read', err);
  }
  const content = consulDnsResolvConf(existing, nameserver);
  const nameservers = resolvConfNameservers(content);
  if (nameservers.length > RESOLV_CONF_MAX_NAMESERVERS) {
    logger?.warn('resolv.conf lists more nameservers than the resolver reads; the last ones are ignored', {
      nameservers: nameservers.join(','),
      max: RESOLV_CONF_MAX_NAMESERVERS,
    });
  }
  if (content === existing) return { path, changed: false, nameservers };

  try {
    await writeFileAtomic(path, content, { mode });
  } catch (err) {
    // Container runtimes bind-mount resolv.conf, and a mount point cannot be
    // renamed over (EBUSY): rewrite it in place, as the runtime's readers expect.
    const cause = (err as { cause?: { code?: unknown } }).cause;
    if (cause?.code !== 'EBUSY' && cause?.code !== 'EXDEV') fail('cannot write', err);
    try {
      const file = await open(path, 'r+');
      try {
        await file.truncate(0);
        await file.writeFile(content, 'utf8');
        await file.sync();
      } finally {
        await file.close();
      }
    } catch (err2) {
      fail('cannot rewrite', err2);
    }
  }
  logger?.info('configured Consul DNS in resolv.conf', { path, nameserver });
  return { path, changed: true, nameservers };
}
