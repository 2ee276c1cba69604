import { ConsulEcsError } from '../util/errors.js';

/**
 * A `discover` command line (go-discover's CLI, which the consul-ecs image ships
 * for cloud auto-join): `discover [-q] addrs key=value key=value ...`.
 */
export interface GoDiscoverCommand {
  /** `-q`: no log output on stderr. */
  quiet: boolean;
  /** The `key=value` configuration, e.g. `{ provider: 'aws', region: 'us-east-1', tag_key: 'consul', tag_value: 'server' }`. */
  config: Record<string, string>;
}

const USAGE = 'write it as discover -q addrs provider=<name> key=value ...';

function invalid(why: string): never {
  throw new ConsulEcsError('consul-servers-discover-invalid', `${why}; ${USAGE}`);
}

/**
 * Reads the arguments of a `discover` command as go-discover's CLI does: Go
 * `flag` parsing (`-q`, `-h`, `--q`, `-q=false`; the flags end at the first
 * non-flag argument or `--`), then the `addrs` subcommand, then the rest joined
 * with spaces as its configuration string (see {@link parseGoDiscoverConfig}).
 * Whatever `discover` would not print addresses for (its help, an unknown flag,
 * no `addrs`, a bad configuration, no provider) throws a
 * `consul-servers-discover-invalid` error saying what go-discover would say.
 */
export function parseGoDiscoverArgs(args: readonly string[]): GoDiscoverCommand {
  let quiet = false;
  let help = false;
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.length < 2 || !arg.startsWith('-')) break;
    if (arg === '--') {
      i++;
      break;
    }
    const spec = arg.slice(arg.startsWith('--') ? 2 : 1);
    if (!spec || spec.startsWith('-') || spec.startsWith('=')) invalid(`discover: bad flag syntax: ${arg}`);
    const eq = spec.indexOf('=');
    const name = eq < 0 ? spec : spec.slice(0, eq);
    const value = eq < 0 ? undefined : spec.slice(eq + 1);
    if (name === 'help') invalid('discover -help prints its usage, not addresses');
    if (name !== 'q' && name !== 'h') invalid(`discover: flag provided but not defined: -${name}`);
    const on = value === undefined ? true : goBool(value);
    if (on === undefined) invalid(`discover: invalid boolean value "${value}" for -${name}: parse error`);
    if (name === 'q') quiet = on;
    else help = on;
  }
  const rest = args.slice(i);
  if (help) invalid('discover -h prints its usage, not addresses');
  if (rest[0] !== 'addrs')
    invalid(
      rest.length ? `discover has no subcommand "${rest[0]}"; it prints its usage, not addresses` : 'discover without addrs prints its usage, not addresses',
    );
  const config = parseGoDiscoverConfig(rest.slice(1).join(' '));
  if (!config.provider) invalid('discover: no provider');
  return { quiet, config };
}

/** Go's `strconv.ParseBool`. */
function goBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

type Token = { kind: 'text'; value: string } | { kind: 'equal' } | { kind: 'error'; value: string };

/**
 * Parses a go-discover configuration string, `key=value key=value ...`, as
 * go-discover does: words are separated by spaces; a key or value holding a
 * space, `=`, `"` or backslash is written in double quotes with Go string
 * escapes (`tag_value="consul server"`, `"some key"="say \"hi\""`). A duplicate
 * key, a key without `=` or a value, an `=` inside an unquoted value or
 * unbalanced quotes throw a `consul-servers-discover-invalid` error. An empty
 * string gives an empty configuration.
 */
export function parseGoDiscoverConfig(text: string): Record<string, string> {
  const config: Record<string, string> = {};
  let chars = Array.from(text.trim());
  let state: 'key' | 'equal' | 'value' = 'key';
  let key = '';
  while (chars.length) {
    const [token, used] = nextToken(chars);
    chars = chars.slice(used);
    if (state === 'key') {
      if (token.kind === 'text') {
        key = token.value;
        if (Object.hasOwn(config, key)) invalid(`discover: ${key}: duplicate key`);
        state = 'equal';
      } else if (token.kind === 'equal') {
        invalid(`discover: ${key}: an "=" in ${key ? `${key}'s value` : 'a key'} needs the value in double quotes, ${key || 'key'}="value-with-="`);
      } else {
        invalid(`discover: ${key}: error with key=value pair: ${token.value}`);
      }
    } else if (state === 'equal') {
      if (token.kind !== 'equal') invalid(`discover: ${key}: missing '='`);
      state = 'value';
    } else {
      if (token.kind === 'text') {
        config[key] = token.value;
        state = 'key';
      } else if (token.kind === 'error') {
        invalid(`discover: ${key}: ${token.value}`);
      } else {
        invalid(`discover: ${key}: missing value`);
      }
    }
  }
  if (state === 'equal') invalid(`discover: ${key}: missing '='`);
  if (state === 'value') invalid(`discover: ${key}: missing value`);
  return config;
}

/**
 * The next token of a configuration string and how many characters it used: an
 * `=`, a quoted word (up to its closing quote), or a plain word (up to a space or `=`).
 */
function nextToken(chars: string[]): [Token, number] {
  let start = 0;
  while (start < chars.length && chars[start] === ' ') start++;
  if (start === chars.length) return [{ kind: 'text', value: '' }, start];
  const first = chars[start]!;
  if (first === '=') return [{ kind: 'equal' }, start + 1];
  if (first === '"') {
    let i = start + 1;
    while (i < chars.length && chars[i] !== '"') i += chars[i] === '\\' ? 2 : 1;
    if (i > chars.length) return [{ kind: 'error', value: 'unterminated escape sequence' }, chars.length];
    if (i === chars.length) return [{ kind: 'error', value: 'unbalanced quotes' }, chars.length];
    const value = goUnquote(chars.slice(start + 1, i));
    return [value === undefined ? { kind: 'error', value: 'invalid syntax' } : { kind: 'text', value }, i + 1];
  }
  let i = start;
  while (i < chars.length && chars[i] !== ' ' && chars[i] !== '=') i++;
  return [{ kind: 'text', value: chars.slice(start, i).join('') }, i];
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };

/** The body of a Go double-quoted string literal, unescaped; undefined when Go's `strconv.Unquote` would refuse it. */
function goUnquote(body: string[]): string | undefined {
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  const pushText = (s: string) => bytes.push(...encoder.encode(s));
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\n') return undefined;
    if (c !== '\\') {
      pushText(c);
      continue;
    }
    const e = body[++i];
    if (e === undefined) return undefined;
    if (e in SIMPLE_ESCAPES) {
      bytes.push(SIMPLE_ESCAPES[e]!);
    } else if (e === 'x' || e === 'u' || e === 'U') {
      const digits = body.slice(i + 1, i + 1 + (e === 'x' ? 2 : e === 'u' ? 4 : 8)).join('');
      if (!/^[0-9a-fA-F]+$/.test(digits) || digits.length !== (e === 'x' ? 2 : e === 'u' ? 4 : 8)) return undefined;
      const n = parseInt(digits, 16);
      i += digits.length;
      if (e === 'x') bytes.push(n);
      else if (n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) return undefined;
      else pushText(String.fromCodePoint(n));
    } else if (e >= '0' && e <= '7') {
      const digits = body.slice(i, i + 3).join('');
      if (!/^[0-7]{3}$/.test(digits)) return undefined;
      const n = parseInt(digits, 8);
      if (n > 255) return undefined;
      bytes.push(n);
      i += 2;
    } else {
      return undefined;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
