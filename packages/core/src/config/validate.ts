import type { ErrorObject, ValidateFunction } from 'ajv';
import { ConsulEcsError } from '../util/errors.js';
import { resolveConfig } from './resolve.js';
import type { ConsulEcsConfig, ResolvedConfig } from './types.js';

/** The source name used in messages when none is given. */
export const CONFIG_ENV_VAR = 'CONSUL_ECS_CONFIG_JSON';

/**
 * The configuration failed validation. `problems` has one line per problem,
 * `<JSON pointer>: <what was expected>`; the message lists them all.
 */
export class ConfigValidationError extends ConsulEcsError {
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super('config-invalid', [`${source} is not a valid consul-ecs configuration (${count}):`, ...problems.map((p) => `  ${p}`)].join('\n'));
    this.problems = problems;
  }
}

/**
 * Validates a parsed configuration against consul-ecs's JSON Schema (plus the
 * checks the schema leaves out, see `extraProblems`) and applies the defaults.
 * Throws one `ConfigValidationError` (code `config-invalid`) listing every
 * problem. Values are quoted only for enum, pattern and range problems, and
 * never for fields whose name suggests a secret.
 *
 * The validators are ajv's, compiled ahead of time from schema.json.
 */
export async function validateConfig(value: unknown, source: string = CONFIG_ENV_VAR): Promise<ResolvedConfig> {
  const validators = await loadValidators();
  const problems = validators.config(value) ? [] : describeErrors(validators.config.errors ?? [], '');
  problems.push(...extraProblems(value, validators.expose));
  if (problems.length > 0) throw new ConfigValidationError(source, problems);
  return resolveConfig(value as ConsulEcsConfig);
}

interface Validators {
  config: ValidateFunction;
  /** `proxy.expose`, whose schema sits beside `properties` in schema.json and so is not applied by it. */
  expose: ValidateFunction;
}

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  [keyword: string]: unknown;
}

let validators: Promise<Validators> | undefined;

/**
 * The validators, compiled ahead of time from schema.json by ajv
 * (scripts/gen-config-validators.mjs), loaded on first use: no schema is
 * compiled at start-up.
 */
function loadValidators(): Promise<Validators> {
  validators ??= import('./validators.generated.js').then((m) => ({ config: m.config, expose: m.expose }));
  validators.catch(() => (validators = undefined));
  return validators;
}

interface Problem {
  path: string;
  keyword: string;
  text: string;
}

function describeErrors(errors: readonly ErrorObject[], prefix: string): string[] {
  const problems = errors.map((e) => describeError(e, prefix));
  // A value of the wrong type fails its other keywords too (e.g. enum); report the type only.
  const typeErrorPaths = new Set(problems.filter((p) => p.keyword === 'type').map((p) => p.path));
  const lines = problems.filter((p) => p.keyword === 'type' || !typeErrorPaths.has(p.path)).map((p) => `${displayPath(p.path)}: ${p.text}`);
  return [...new Set(lines)];
}

function describeError(e: ErrorObject, prefix: string): Problem {
  const path = prefix + e.instancePath;
  const params = e.params as Record<string, unknown>;
  const problem = (text: string, at = path): Problem => ({ path: at, keyword: e.keyword, text });
  switch (e.keyword) {
    case 'type':
      return problem(`must be ${typeNames(params.type as string | string[])} (got ${jsonType(e.data)})`);
    case 'required':
      return problem('is required', `${path}/${escapePointer(String(params.missingProperty))}`);
    case 'additionalProperties': {
      const allowed = Object.keys((e.parentSchema as SchemaNode | undefined)?.properties ?? {});
      return problem(`is not a known property; allowed here: ${allowed.join(', ')}`, `${path}/${escapePointer(String(params.additionalProperty))}`);
    }
    case 'enum':
      return problem(`must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')} (got ${quote(e.data, path)})`);
    case 'pattern':
      return problem(`must match the pattern ${String(params.pattern)}${patternHint(String(params.pattern))} (got ${quote(e.data, path)})`);
    case 'minLength':
      return problem(params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return problem(`must be ${String(params.comparison)} ${String(params.limit)} (got ${quote(e.data, path)})`);
    case 'uniqueItems': {
      const [first, second] = [Number(params.i), Number(params.j)].sort((a, b) => a - b);
      return problem(`must not contain duplicates (items ${first} and ${second} are equal)`);
    }
    default:
      return problem(e.message ?? `fails the schema keyword ${e.keyword}`);
  }
}

const PORT_PATHS = [
  'consulServers/grpc/port',
  'consulServers/http/port',
  'service/port',
  'proxy/publicListenerPort',
  'proxy/healthCheckPort',
  'proxy/upstreams/*/localBindPort',
  'proxy/expose/paths/*/listenerPort',
  'proxy/expose/paths/*/localPathPort',
  'gateway/healthCheckPort',
  'gateway/lanAddress/port',
  'gateway/wanAddress/port',
  'transparentProxy/excludeInboundPorts/*',
  'transparentProxy/excludeOutboundPorts/*',
];

/**
 * What consul-ecs checks beyond schema.json, or what would break later:
 * - `proxy.expose` against its (misplaced) schema;
 * - `healthCheckPort`s, untyped in the schema, are integers (consul-ecs decodes them into an int);
 * - ports lie in 0..65535 (the schema does not bound them).
 */
function extraProblems(config: unknown, expose: ValidateFunction): string[] {
  const problems: string[] = [];
  for (const path of ['proxy/healthCheckPort', 'gateway/healthCheckPort']) {
    for (const [at, value] of valuesAt(config, path)) {
      if (value !== null && !Number.isInteger(value)) problems.push(`${displayPath(at)}: must be an integer or null (got ${jsonType(value)})`);
    }
  }
  for (const [at, value] of valuesAt(config, 'proxy/expose')) {
    if (!expose(value)) problems.push(...describeErrors(expose.errors ?? [], at));
  }
  for (const path of PORT_PATHS) {
    for (const [at, value] of valuesAt(config, path)) {
      if (Number.isInteger(value) && ((value as number) < 0 || (value as number) > 65535)) {
        problems.push(`${displayPath(at)}: must be a port number from 0 to 65535 (got ${quote(value, at)})`);
      }
    }
  }
  return problems;
}

/** The values at a `/`-separated path (`*` matches every array element), with their JSON pointers. */
function valuesAt(value: unknown, path: string): Array<[string, unknown]> {
  let found: Array<[string, unknown]> = [['', value]];
  for (const segment of path.split('/')) {
    found = found.flatMap(([at, v]): Array<[string, unknown]> => {
      if (segment === '*') return Array.isArray(v) ? v.map((item, i) => [`${at}/${i}`, item]) : [];
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, segment)) return [];
      return [[`${at}/${segment}`, (v as Record<string, unknown>)[segment]]];
    });
  }
  return found;
}

function displayPath(pointer: string): string {
  return pointer === '' ? '(root)' : pointer;
}

function escapePointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

function typeNames(type: string | string[]): string {
  const names = (Array.isArray(type) ? type : [type]).map((t) => (t === 'null' ? 'null' : `${/^[aeiou]/.test(t) ? 'an' : 'a'} ${t}`));
  return names.join(' or ');
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

const SECRET_NAME = /secret|password|passwd|token|credential|private|access.?key|session/i;

/** A value for a message: JSON, shortened; hidden when its field's name suggests a secret. */
function quote(value: unknown, pointer: string): string {
  const name = pointer.slice(pointer.lastIndexOf('/') + 1);
  if (SECRET_NAME.test(name)) return 'a value not shown';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

const NAME_PATTERN = '(^$)|(^[a-z0-9]([a-z0-9-_]*[a-z0-9])?$)';

function patternHint(pattern: string): string {
  return pattern === NAME_PATTERN ? ': lower-case letters, digits, "-" and "_", starting and ending with a letter or digit' : '';
}
