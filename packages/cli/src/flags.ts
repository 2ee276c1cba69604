/**
 * Go-style flags, as the consul and consul-ecs CLIs take them: `-name value`,
 * `-name=value`, `--name value`; booleans as `-name` or `-name=false`; flags stop
 * at the first non-flag argument or at `--`.
 */
export type FlagSpec =
  { type: 'string'; usage: string; default?: string; env?: string } | { type: 'bool'; usage: string; default?: boolean } | { type: 'list'; usage: string };

export type FlagSpecs = Record<string, FlagSpec>;

export type FlagValues<S extends FlagSpecs> = {
  [K in keyof S]: S[K] extends { type: 'bool' } ? boolean : S[K] extends { type: 'list' } ? string[] : string | undefined;
};

/** Bad usage: the CLI prints it with the command's help and exits 1. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedFlags<S extends FlagSpecs> {
  flags: FlagValues<S>;
  args: string[];
  help: boolean;
}

export function parseFlags<S extends FlagSpecs>(specs: S, argv: readonly string[], env: Record<string, string | undefined> = {}): ParsedFlags<S> {
  const values: Record<string, string | boolean | string[] | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.type === 'bool') values[name] = spec.default ?? false;
    else if (spec.type === 'list') values[name] = [];
    else values[name] = (spec.env ? env[spec.env] : undefined) || spec.default;
  }
  let help = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const inline = eq === -1 ? undefined : body.slice(eq + 1);
    if (name === 'h' || name === 'help') {
      help = true;
      continue;
    }
    const spec = specs[name];
    if (!spec) throw new UsageError(`flag provided but not defined: -${name}`);
    if (spec.type === 'bool') {
      if (inline === undefined) values[name] = true;
      else if (/^(1|t|true)$/i.test(inline)) values[name] = true;
      else if (/^(0|f|false)$/i.test(inline)) values[name] = false;
      else throw new UsageError(`invalid boolean value "${inline}" for -${name}`);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    if (spec.type === 'list') (values[name] as string[]).push(value);
    else values[name] = value;
  }
  return { flags: values as FlagValues<S>, args: argv.slice(i), help };
}

/** The flags section of a command's help, one flag a line pair, as Go's flag package prints it. */
export function formatFlags(specs: FlagSpecs): string {
  return Object.entries(specs)
    .map(([name, spec]) => {
      const arg = spec.type === 'bool' ? '' : spec.type === 'list' ? ' <value>' : ' <string>';
      const def =
        spec.type === 'string' && spec.default !== undefined ? ` (default "${spec.default}")` : spec.type === 'bool' && spec.default ? ' (default true)' : '';
      const env = spec.type === 'string' && spec.env ? ` [env ${spec.env}]` : '';
      return `  -${name}${arg}\n      ${spec.usage}${def}${env}`;
    })
    .join('\n');
}

/** `k=v` pairs of a repeatable flag into an object. */
export function parseKeyValues(pairs: readonly string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`-${flag} takes key=value, got "${p}"`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}
