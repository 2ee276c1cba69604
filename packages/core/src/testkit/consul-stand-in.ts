import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parsePrincipalArn } from '../aws/arn.js';
import { CONSUL_IAM_HEADERS, decodeLoginBearerToken } from '../aws/sigv4-login.js';
import type { AgentService, HealthCheck } from '../catalog/types.js';
import type { AclToken } from '../consul/acl.js';
import { LoopbackServer, readBody, respond } from './loopback-server.js';
import { awsErrorAnswer } from './aws-iam-stand-in.js';
import { fillPlaceholders, recordedConsulAnswer, type RecordedConsulAnswerName } from './recorded.js';
import { parseAmzDate, parseSigV4Authorization } from './sigv4-check.js';

/** The IAM role tag consul-ecs's binding rule names the service identity by. */
const SERVICE_NAME_TAG = 'consul.hashicorp.com.service-name';
/** The X-Amz-* headers Consul's aws-iam auth method lets a login's STS request carry. */
const ALLOWED_AMZ_HEADERS = [
  'x-amz-algorithm',
  'x-amz-content-sha256',
  'x-amz-credential',
  'x-amz-date',
  'x-amz-security-token',
  'x-amz-signature',
  'x-amz-signedheaders',
];
const DEFAULT_LEADER = '127.0.0.1:8300';

/** The aws-iam auth method of the stand-in, named as Consul's config names its fields. */
export interface StandInAuthMethod {
  /** Default `iam-ecs-service-token`. */
  name?: string;
  /**
   * Where a login's signed sts:GetCallerIdentity request is sent (an
   * {@link AwsIamStandIn}'s url), keeping the Host it was signed for, as Consul
   * does. Without it the stand-in calls no AWS: it checks the bearer token's
   * form and signature shape and logs in as {@link identity}.
   */
  stsEndpoint?: string;
  /** Where the signed iam:GetRole request is sent. Default `stsEndpoint`. */
  iamEndpoint?: string;
  /** `ServerIDHeaderValue`: the value of X-Consul-IAM-ServerID both requests must sign. */
  serverIdHeaderValue?: string;
  /** `EnableIAMEntityDetails`. Default true (as consul-ecs's controller sets it). */
  enableIamEntityDetails?: boolean;
  /** `BoundIAMPrincipalARNs`; `*` globs with entity details on. Default any principal (`['*']`). */
  boundIamPrincipalArns?: string[];
  /**
   * Without `stsEndpoint`: the role a well-formed login is taken to be. Default
   * the role its iam:GetRole request names, at path `/`, tagged with its own
   * name as service name.
   */
  identity?: { roleArn: string; tags?: Record<string, string> };
}

export interface ConsulStandInOptions {
  host?: string;
  port?: number;
  datacenter?: string;
  /** The token with every right (the controller's bootstrap token). Default random. */
  managementToken?: string;
  authMethod?: StandInAuthMethod;
  /** What `GET /v1/status/leader` answers. Default `127.0.0.1:8300`. */
  leader?: string;
}

/** The calls the stand-in serves. */
export type ConsulStandInRoute = 'login' | 'logout' | 'token-self' | 'register' | 'deregister' | 'node-services' | 'health-checks' | 'leader';

/** A token made by a login, as the stand-in holds it. */
export interface StandInLoginToken {
  accessorId: string;
  secretId: string;
  authMethod: string;
  serviceName: string;
  /** The login's Meta (Consul keeps it only in the description). */
  meta: Record<string, string>;
  description: string;
}

/** A request the stand-in served, for assertions. */
export interface ConsulStandInRequest {
  method: string;
  path: string;
  route?: ConsulStandInRoute;
  status: number;
  /** Whose token it carried. */
  token: 'management' | 'login' | 'anonymous' | 'unknown';
}

type Principal = { kind: 'management'; token: Record<string, unknown> } | { kind: 'login'; token: StoredToken } | { kind: 'anonymous' } | { kind: 'unknown' };

interface StoredToken {
  answer: Record<string, unknown>;
  info: StandInLoginToken;
}

interface StoredNode {
  address: string;
  meta: Record<string, string> | null;
  taggedAddresses: Record<string, string> | null;
  createIndex: number;
  modifyIndex: number;
  services: Map<string, { service: AgentService; createIndex: number; modifyIndex: number }>;
  checks: Map<string, { check: HealthCheck; createIndex: number; modifyIndex: number }>;
}

/** A refusal: a recorded answer with values for its placeholders, or a text of the stand-in's own. */
type Refusal = { answer: RecordedConsulAnswerName; values?: Record<string, string> } | { status: number; text: string };

const ROUTES: Array<[string, RegExp, ConsulStandInRoute]> = [
  ['POST', /^\/v1\/acl\/login$/, 'login'],
  ['POST', /^\/v1\/acl\/logout$/, 'logout'],
  ['GET', /^\/v1\/acl\/token\/self$/, 'token-self'],
  ['PUT', /^\/v1\/catalog\/register$/, 'register'],
  ['PUT', /^\/v1\/catalog\/deregister$/, 'deregister'],
  ['GET', /^\/v1\/catalog\/node-services\/([^/]+)$/, 'node-services'],
  ['GET', /^\/v1\/health\/checks\/([^/]+)$/, 'health-checks'],
  ['GET', /^\/v1\/status\/leader$/, 'leader'],
];

/**
 * A stand-in for a Consul server on loopback, for the calls an ECS task makes:
 * ACL login (aws-iam auth method), token read-back and logout; catalog register,
 * deregister and node services; health checks; the leader. It answers with the
 * answers recorded from Consul 1.22 (packages/core/src/testkit/fixtures/consul.json),
 * and checks ACL tokens as a server with `default_policy = "deny"` does: a login
 * token holds the service identity its IAM role's `consul.hashicorp.com.service-name`
 * tag names (service:write on it and its sidecar, read on all), the management
 * token every right, and a request without a token none.
 *
 * Not served: central config (merge-central-config answers as with none), other
 * binding rules than the service identity one, namespaces and partitions, blocking queries.
 */
export class ConsulStandIn {
  readonly datacenter: string;
  readonly managementToken: string;
  /** Requests served, by route. */
  readonly hits: Record<ConsulStandInRoute, number> = {
    login: 0,
    logout: 0,
    'token-self': 0,
    register: 0,
    deregister: 0,
    'node-services': 0,
    'health-checks': 0,
    leader: 0,
  };
  /** Every request served, in order. */
  readonly requests: ConsulStandInRequest[] = [];

  readonly #server: LoopbackServer;
  readonly #method: Required<Omit<StandInAuthMethod, 'stsEndpoint' | 'iamEndpoint' | 'serverIdHeaderValue' | 'identity'>> & StandInAuthMethod;
  readonly #leader: string;
  readonly #tokens = new Map<string, StoredToken>();
  readonly #management: Record<string, unknown>;
  readonly #nodes = new Map<string, StoredNode>();
  /** Virtual IPs of the services proxies front, as Consul assigns them (240.0.0.1 on). */
  readonly #virtualIps = new Map<string, string>();
  readonly #failures = new Map<ConsulStandInRoute, { status: number; text: string }>();
  #index = 10;

  constructor(opts: ConsulStandInOptions = {}) {
    this.#server = new LoopbackServer(opts.host, opts.port);
    this.datacenter = opts.datacenter ?? 'dc1';
    this.managementToken = opts.managementToken ?? randomUUID();
    this.#leader = opts.leader ?? DEFAULT_LEADER;
    const method = opts.authMethod ?? {};
    this.#method = {
      ...method,
      name: method.name ?? 'iam-ecs-service-token',
      enableIamEntityDetails: method.enableIamEntityDetails ?? true,
      boundIamPrincipalArns: method.boundIamPrincipalArns ?? ['*'],
    };
    this.#management = fromTemplate(recordedConsulAnswer('tokenSelfManagement').body, {
      AccessorID: randomUUID(),
      SecretID: this.managementToken,
      CreateTime: new Date().toISOString(),
      Hash: randomBytes(32).toString('base64'),
      CreateIndex: 1,
      ModifyIndex: 1,
    });
  }

  /** `http://127.0.0.1:<port>`: the address to give a Consul client. */
  get address(): string {
    return this.#server.origin;
  }

  get port(): number {
    return this.#server.port;
  }

  get host(): string {
    return this.#server.host;
  }

  /** The auth method's name. */
  get authMethod(): string {
    return this.#method.name;
  }

  async start(): Promise<this> {
    await this.#server.start((req, res) => this.#handle(req, res));
    return this;
  }

  async stop(): Promise<void> {
    await this.#server.stop();
  }

  /**
   * Registers a node (e.g. the cluster's synthetic node, as the consul-ecs
   * controller does once per cluster): login tokens may register services on an
   * existing node, but not create one (no node:write).
   */
  registerNode(node: string, opts: { address?: string; meta?: Record<string, string> } = {}): void {
    this.#upsertNode(node, opts.address ?? '127.0.0.1', opts.meta ?? { 'synthetic-node': 'true' }, ++this.#index);
  }

  /** The tokens made by logins and not logged out. */
  get tokens(): StandInLoginToken[] {
    return [...this.#tokens.values()].map((t) => structuredClone(t.info));
  }

  /** The names of the registered nodes. */
  nodes(): string[] {
    return [...this.#nodes.keys()];
  }

  /** The services of a node (or of every node), as `GET /v1/catalog/node-services` answers them. */
  services(node?: string): AgentService[] {
    const names = node === undefined ? [...this.#nodes.keys()] : [node];
    return names.flatMap((n) => this.#serviceAnswers(n));
  }

  /** The checks of a service instance (or of all), as `GET /v1/health/checks` answers them. */
  checks(serviceId?: string): HealthCheck[] {
    return [...this.#nodes.keys()].flatMap((n) => this.#checkAnswers(n)).filter((c) => serviceId === undefined || c.ServiceID === serviceId);
  }

  /**
   * Makes a route answer with this HTTP status and text instead (undefined: serve
   * normally). Default text `No cluster leader`, what Consul answers without one.
   */
  failRoute(route: ConsulStandInRoute, status: number | undefined, text = 'No cluster leader'): void {
    if (status === undefined) this.#failures.delete(route);
    else this.#failures.set(route, { status, text });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://consul');
    const body = await readBody(req);
    const principal = this.#principal(req);
    const record: ConsulStandInRequest = { method: req.method ?? 'GET', path: url.pathname, status: 0, token: principal.kind };
    this.requests.push(record);
    const send = (status: number, headers: Record<string, string>, answer: unknown) => {
      record.status = status;
      respond(res, status, headers, answer);
    };
    const matched = ROUTES.find(([, re]) => re.test(url.pathname));
    if (!matched) return send(404, { 'content-type': 'text/plain; charset=utf-8' }, `the Consul stand-in does not serve ${url.pathname}`);
    const [method, re, route] = matched;
    record.route = route;
    if (req.method !== method) return send(405, { 'content-type': 'text/plain; charset=utf-8' }, `method ${req.method} not allowed`);
    this.hits[route]++;
    const failure = this.#failures.get(route);
    if (failure) return send(failure.status, textHeaders(), failure.text);

    const param = decodeURIComponent(re.exec(url.pathname)![1] ?? '');
    const reply = (name: RecordedConsulAnswerName, answer?: unknown, values: Record<string, string> = {}) => {
      const recorded = recordedConsulAnswer(name);
      const headers = { ...recorded.headers };
      if ('x-consul-index' in headers) headers['x-consul-index'] = String(this.#index);
      const text =
        typeof recorded.body === 'string' && answer === undefined ? fillPlaceholders(recorded.body, values) : JSON.stringify(answer ?? recorded.body);
      send(recorded.status, headers, text);
    };
    const refuse = (r: Refusal) => ('answer' in r ? reply(r.answer, undefined, r.values) : send(r.status, textHeaders(), r.text));
    let json: Record<string, unknown> = {};
    if (method !== 'GET' && body.trim()) {
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch (err) {
        return send(400, textHeaders(), `Request decode failed: ${(err as Error).message}`);
      }
    }

    switch (route) {
      case 'leader':
        return reply('leader', this.#leader);
      case 'login': {
        if (json.AuthMethod !== this.#method.name) return reply('loginUnknownMethod', undefined, { authMethod: String(json.AuthMethod ?? '') });
        const verdict = await this.#validateLogin(String(json.BearerToken ?? ''));
        if ('answer' in verdict || 'text' in verdict) return refuse(verdict);
        return reply('login', this.#createToken(verdict.serviceName, (json.Meta as Record<string, string> | null) ?? {}).answer);
      }
      case 'token-self':
        if (principal.kind === 'management') return reply('tokenSelfManagement', principal.token);
        if (principal.kind === 'login') return reply('tokenSelf', principal.token.answer);
        return reply('tokenSelfUnknown');
      case 'logout':
        if (principal.kind === 'anonymous') return reply('logoutAnonymous');
        if (principal.kind === 'unknown') return reply('logoutUnknown');
        if (principal.kind === 'management') return reply('logoutManagement');
        this.#tokens.delete(principal.token.info.secretId);
        this.#index++;
        return reply('logout');
      case 'register': {
        if (principal.kind === 'unknown') return reply('registerUnknownToken');
        const refusal = this.#register(json, principal);
        return refusal ? refuse(refusal) : reply('register');
      }
      case 'deregister': {
        if (principal.kind === 'unknown') return reply('registerUnknownToken');
        const refusal = this.#deregister(json, principal);
        return refusal ? refuse(refusal) : reply('deregister');
      }
      case 'node-services': {
        if (principal.kind === 'unknown') return reply('nodeServicesUnknownToken');
        const filter = parseFilter(url.searchParams.get('filter'));
        if (typeof filter === 'string') return send(500, textHeaders(), filter);
        const node = this.#nodes.get(param);
        if (principal.kind === 'anonymous' || !node) {
          return reply('nodeServicesAnonymous', { Node: null, Services: url.searchParams.has('filter') ? [] : null });
        }
        return reply('nodeServices', { Node: this.#nodeAnswer(param, node), Services: this.#serviceAnswers(param).filter(filter) });
      }
      case 'health-checks': {
        if (principal.kind === 'unknown') return reply('healthChecksUnknownToken');
        const filter = parseFilter(url.searchParams.get('filter'));
        if (typeof filter === 'string') return send(500, textHeaders(), filter);
        if (principal.kind === 'anonymous') return reply('healthChecksAnonymous', []);
        return reply(
          'healthChecks',
          this.checks()
            .filter((c) => c.ServiceName === param)
            .filter(filter),
        );
      }
    }
  }

  #principal(req: IncomingMessage): Principal {
    const bearer = /^Bearer\s+(.+)$/i.exec(String(req.headers.authorization ?? ''))?.[1];
    const secret = String(req.headers['x-consul-token'] ?? bearer ?? '').trim();
    if (!secret) return { kind: 'anonymous' };
    if (secret === this.managementToken) return { kind: 'management', token: this.#management };
    const token = this.#tokens.get(secret);
    return token ? { kind: 'login', token } : { kind: 'unknown' };
  }

  /** Whether a principal may write a service: its identity's service and sidecar, or anything as management. */
  #mayWriteService(p: Principal, name: string): boolean {
    if (p.kind === 'management') return true;
    if (p.kind !== 'login') return false;
    const own = p.token.info.serviceName;
    return name === own || name === `${own}-sidecar-proxy`;
  }

  /** Consul's refusal of a permission, in the words recorded for a token or for the anonymous token. */
  #denied(
    p: Principal,
    permission: 'node:write' | 'service:write',
    resource: string,
    anonymousAnswer: RecordedConsulAnswerName = 'registerAnonymousDenied',
  ): Refusal {
    const anonymous = p.kind !== 'login' && p.kind !== 'management';
    const recorded = recordedConsulAnswer(anonymous ? anonymousAnswer : 'registerServiceDenied');
    const text = fillPlaceholders(String(recorded.body).replace("'service:write'", `'${permission}'`), {
      service: resource,
      accessorId: p.kind === 'login' ? p.token.info.accessorId : '',
    });
    return { status: recorded.status, text };
  }

  #register(reg: Record<string, unknown>, p: Principal): Refusal | undefined {
    const name = typeof reg.Node === 'string' ? reg.Node : '';
    if (!name) return { status: 400, text: 'Must provide node' };
    const skipNodeUpdate = reg.SkipNodeUpdate === true;
    const address = typeof reg.Address === 'string' ? reg.Address : '';
    if (!skipNodeUpdate && !address) return { status: 400, text: 'Must provide address if SkipNodeUpdate is not set' };
    const node = this.#nodes.get(name);
    const meta = (reg.NodeMeta as Record<string, string> | undefined) ?? null;
    const changesNode = !node || (!skipNodeUpdate && (address !== node.address || JSON.stringify(meta) !== JSON.stringify(node.meta)));
    if (changesNode && p.kind !== 'management') {
      if (p.kind !== 'login') return this.#denied(p, 'node:write', name);
      return { answer: 'registerNodeDenied', values: { accessorId: p.token.info.accessorId, node: name } };
    }
    const service = reg.Service as AgentService | undefined;
    if (service) {
      if (!service.Service || !service.ID) return { status: 400, text: 'Must provide service name and ID' };
      const previous = node?.services.get(service.ID)?.service.Service;
      for (const n of new Set([service.Service, previous ?? service.Service])) if (!this.#mayWriteService(p, n)) return this.#denied(p, 'service:write', n);
    }
    const checks = (reg.Checks as HealthCheck[] | undefined) ?? [];
    for (const check of checks) {
      if (!check.ServiceID) {
        if (p.kind !== 'management') return this.#denied(p, 'node:write', name);
        continue;
      }
      const owner = service?.ID === check.ServiceID ? service.Service : node?.services.get(check.ServiceID)?.service.Service;
      if (!owner) return { status: 500, text: `Unknown service ID '${check.ServiceID}' for check ID '${check.CheckID}'` };
      if (!this.#mayWriteService(p, owner)) return this.#denied(p, 'service:write', owner);
    }

    const index = ++this.#index;
    const stored = changesNode ? this.#upsertNode(name, address, meta, index) : node!;
    if (service) {
      const createIndex = stored.services.get(service.ID)?.createIndex ?? index;
      stored.services.set(service.ID, { service: structuredClone(service), createIndex, modifyIndex: index });
      const destination = service.Kind === 'connect-proxy' ? service.Proxy?.DestinationServiceName : undefined;
      if (destination && !this.#virtualIps.has(destination)) this.#virtualIps.set(destination, `240.0.0.${this.#virtualIps.size + 1}`);
    }
    for (const check of checks) {
      // What Consul derives (node, service name and tags, indexes) is not the check's own.
      const { Node: _n, ServiceName: _s, ServiceTags: _t, CreateIndex: _c, ModifyIndex: _m, ...own } = check as HealthCheck & Record<string, unknown>;
      const createIndex = stored.checks.get(check.CheckID)?.createIndex ?? index;
      stored.checks.set(check.CheckID, { check: own as HealthCheck, createIndex, modifyIndex: index });
    }
    return undefined;
  }

  #deregister(req: Record<string, unknown>, p: Principal): Refusal | undefined {
    const name = String(req.Node ?? '');
    const node = this.#nodes.get(name);
    if (typeof req.ServiceID === 'string' && req.ServiceID) {
      const serviceId = req.ServiceID;
      const entry = node?.services.get(serviceId);
      if (!node || !entry) return { answer: 'deregisterUnknown', values: { serviceId } };
      if (!this.#mayWriteService(p, entry.service.Service)) return this.#denied(p, 'service:write', entry.service.Service, 'deregisterAnonymousDenied');
      node.services.delete(serviceId);
      for (const [id, c] of node.checks) if (c.check.ServiceID === serviceId) node.checks.delete(id);
    } else if (typeof req.CheckID === 'string' && req.CheckID) {
      const entry = node?.checks.get(req.CheckID);
      if (!node || !entry) return { status: 500, text: `Unknown check ID '${req.CheckID}'` };
      const owner = entry.check.ServiceID ? node.services.get(entry.check.ServiceID)?.service.Service : undefined;
      if (owner ? !this.#mayWriteService(p, owner) : p.kind !== 'management') return this.#denied(p, owner ? 'service:write' : 'node:write', owner ?? name);
      node.checks.delete(req.CheckID);
    } else {
      if (p.kind !== 'management') return this.#denied(p, 'node:write', name);
      this.#nodes.delete(name);
    }
    this.#index++;
    return undefined;
  }

  #upsertNode(name: string, address: string, meta: Record<string, string> | null, index: number): StoredNode {
    const node = this.#nodes.get(name);
    if (node) {
      Object.assign(node, { address, meta, modifyIndex: index });
      return node;
    }
    const created: StoredNode = { address, meta, taggedAddresses: null, createIndex: index, modifyIndex: index, services: new Map(), checks: new Map() };
    this.#nodes.set(name, created);
    return created;
  }

  #nodeAnswer(name: string, node: StoredNode): Record<string, unknown> {
    const recorded = (recordedConsulAnswer('nodeServices').body as { Node: Record<string, unknown> }).Node;
    return fromTemplate(recorded, {
      Node: name,
      Address: node.address,
      Datacenter: this.datacenter,
      TaggedAddresses: node.taggedAddresses,
      Meta: node.meta,
      CreateIndex: node.createIndex,
      ModifyIndex: node.modifyIndex,
    });
  }

  /** A node's services as Consul answers them: what was registered over the defaults Consul fills in. */
  #serviceAnswers(node: string): AgentService[] {
    const entries = [...(this.#nodes.get(node)?.services.values() ?? [])].sort((a, b) => (a.service.ID < b.service.ID ? -1 : 1));
    const [plain, proxy] = (recordedConsulAnswer('nodeServicesMinimal').body as { Services: Array<Record<string, unknown>> }).Services;
    // Consul's defaults: those of the fewest fields a service (and an upstream) can be registered with;
    // its order of fields: that of a sidecar with every field mesh-init registers.
    const defaults = omit(plain!, ['ID', 'Service', 'Port']);
    const order = Object.keys((recordedConsulAnswer('nodeServicesProxy').body as { Services: object[] }).Services[0]!);
    const upstreamDefaults = omit((proxy!.Proxy as { Upstreams: Array<Record<string, unknown>> }).Upstreams[0]!, ['DestinationName', 'LocalBindPort']);
    return entries.map(({ service, createIndex, modifyIndex }) => {
      const given = service as unknown as Record<string, unknown>;
      const out = withDefaults(given, defaults);
      if (given.Proxy || defaults.Proxy) {
        const proxyGiven = (given.Proxy ?? {}) as Record<string, unknown>;
        const p = withDefaults(proxyGiven, defaults.Proxy as Record<string, unknown>);
        if (Array.isArray(proxyGiven.Upstreams)) p.Upstreams = proxyGiven.Upstreams.map((u: Record<string, unknown>) => withDefaults(u, upstreamDefaults));
        out.Proxy = p;
      }
      const vip = service.Kind === 'connect-proxy' ? this.#virtualIps.get(service.Proxy?.DestinationServiceName ?? '') : undefined;
      if (vip) out.TaggedAddresses = { ...(service.TaggedAddresses ?? {}), 'consul-virtual': { Address: vip, Port: service.Port } };
      return inOrder({ ...out, CreateIndex: createIndex, ModifyIndex: modifyIndex }, order) as unknown as AgentService;
    });
  }

  #checkAnswers(node: string): HealthCheck[] {
    const stored = this.#nodes.get(node);
    if (!stored) return [];
    const defaults = (recordedConsulAnswer('healthChecksMinimal').body as Array<Record<string, unknown>>)[0]!;
    return [...stored.checks.values()]
      .sort((a, b) => (a.check.CheckID < b.check.CheckID ? -1 : 1))
      .map(({ check, createIndex, modifyIndex }) => {
        const service = check.ServiceID ? stored.services.get(check.ServiceID)?.service : undefined;
        return withDefaults(
          {
            ...(check as unknown as Record<string, unknown>),
            Node: node,
            ServiceName: service?.Service ?? '',
            ServiceTags: service?.Tags ?? [],
            CreateIndex: createIndex,
            ModifyIndex: modifyIndex,
          },
          defaults,
        ) as unknown as HealthCheck;
      });
  }

  #createToken(serviceName: string, meta: Record<string, string>): StoredToken {
    const recorded = recordedConsulAnswer('login').body as Record<string, unknown>;
    const base = String((recordedConsulAnswer('loginWithoutMeta').body as AclToken).Description);
    const description = Object.keys(meta).length ? `${base}: ${goJson(Object.fromEntries(Object.entries(meta).sort(([a], [b]) => (a < b ? -1 : 1))))}` : base;
    const index = ++this.#index;
    const info: StandInLoginToken = {
      accessorId: randomUUID(),
      secretId: randomUUID(),
      authMethod: this.#method.name,
      serviceName,
      meta: { ...meta },
      description,
    };
    const answer = fromTemplate(recorded, {
      // Consul names a login's token after the auth method's type and name.
      Name: String(recorded.Name)
        .replace(String(recorded.AuthMethod), this.#method.name)
        .replace(/\d+$/, () => BigInt.asUintN(64, randomBytes(8).readBigUInt64BE()).toString()),
      AccessorID: info.accessorId,
      SecretID: info.secretId,
      Description: description,
      ServiceIdentities: [{ ServiceName: serviceName }],
      AuthMethod: this.#method.name,
      CreateTime: new Date().toISOString(),
      Hash: randomBytes(32).toString('base64'),
      CreateIndex: index,
      ModifyIndex: index,
    });
    const token = { answer, info };
    this.#tokens.set(info.secretId, token);
    return token;
  }

  /** What Consul's aws-iam auth method makes of a bearer token: the service name it binds, or a refusal. */
  async #validateLogin(bearerToken: string): Promise<{ serviceName: string } | Refusal> {
    const m = this.#method;
    const refused = (text: string): Refusal => ({ status: recordedConsulAnswer('loginNotPost').status, text });
    let token: ReturnType<typeof decodeLoginBearerToken>;
    let stsUrl: URL;
    try {
      token = decodeLoginBearerToken(bearerToken);
      stsUrl = parseUrl(token.url);
    } catch (err) {
      return { answer: 'loginInvalidToken', values: { reason: (err as Error).message } };
    }
    if (token.method !== 'POST') return { answer: 'loginNotPost' };
    if (!m.stsEndpoint && !/^sts(-fips)?\..*amazonaws\.com$/.test(stsUrl.hostname)) return refused(`invalid STS hostname: "${stsUrl.hostname}"`);
    const bodyError = checkForm(token.body, { Action: ['GetCallerIdentity'], Version: [] });
    if (typeof bodyError === 'string') return refused(`iam_request_body error: ${bodyError}`);
    const headers = new Map(Object.entries(token.headers).map(([k, v]) => [k.toLowerCase(), v]));
    for (const k of headers.keys()) if (k.startsWith('x-amz-') && !ALLOWED_AMZ_HEADERS.includes(k)) return refused(`invalid request header: ${canonical(k)}`);

    let entity: { url: URL; headers: Map<string, string[]>; body: string; action: string } | undefined;
    if (m.enableIamEntityDetails) {
      const get = (name: string) => {
        const values = headers.get(name.toLowerCase());
        if (!values?.length) throw new Error(`missing header "${name}"`);
        if (values.length !== 1) throw new Error(`invalid value for header "${name}" (expected 1 item)`);
        return values[0]!;
      };
      try {
        get(CONSUL_IAM_HEADERS.getEntityMethod);
        const url = parseUrl(get(CONSUL_IAM_HEADERS.getEntityUrl));
        const entityHeaders = JSON.parse(get(CONSUL_IAM_HEADERS.getEntityHeaders)) as Record<string, string[]>;
        const body = get(CONSUL_IAM_HEADERS.getEntityBody);
        if (!m.iamEndpoint && !m.stsEndpoint && !/^iam(-fips)?\..*amazonaws\.com$/.test(url.hostname))
          return refused(`invalid IAM hostname: "${url.hostname}"`);
        const form = checkForm(body, { Action: ['GetRole', 'GetUser'], RoleName: [], UserName: [], Version: [] });
        const action = typeof form === 'string' ? '' : (form.get('Action') ?? '');
        if (
          typeof form === 'string' ||
          !(action === 'GetRole' ? form.has('RoleName') && !form.has('UserName') : form.has('UserName') && !form.has('RoleName'))
        ) {
          return refused(`iam_request_headers["${CONSUL_IAM_HEADERS.getEntityBody}"] error: invalid request body "${body}"`);
        }
        entity = { url, headers: new Map(Object.entries(entityHeaders).map(([k, v]) => [k.toLowerCase(), v])), body, action };
      } catch (err) {
        return refused((err as Error).message);
      }
    }
    if (m.serverIdHeaderValue) {
      for (const h of [headers, ...(entity ? [entity.headers] : [])]) {
        const problem = serverIdProblem(h, m.serverIdHeaderValue);
        if (problem) return problem;
      }
    }

    let identity: { arn: string; tags: Record<string, string> };
    if (m.stsEndpoint) {
      const caller = await replay(m.stsEndpoint, stsUrl, headers, token.body, 'GetCallerIdentity', 'STS');
      if ('problem' in caller) return refused(caller.problem);
      const arn = xmlText(caller.xml, 'Arn');
      const userId = xmlText(caller.xml, 'UserId');
      let principal: ReturnType<typeof parsePrincipalArn>;
      try {
        principal = parsePrincipalArn(arn);
      } catch (err) {
        return refused((err as Error).message);
      }
      const kind = principal.type === 'user' ? 'user' : 'role';
      identity = { arn: `arn:${principal.partition}:iam::${principal.account}:${kind}/${principal.name}`, tags: {} };
      if (entity) {
        const answer = await replay(m.iamEndpoint ?? m.stsEndpoint, entity.url, entity.headers, entity.body, 'iam:GetUser or iam:GetRole', 'IAM');
        if ('problem' in answer) return refused(answer.problem);
        const id = xmlText(answer.xml, entity.action === 'GetRole' ? 'RoleId' : 'UserId');
        if (id !== userId.split(':')[0]) return refused('unique id mismatch in login token');
        identity = { arn: xmlText(answer.xml, 'Arn'), tags: xmlTags(answer.xml) };
      }
    } else {
      const problem = signatureShapeProblem(headers, 'sts') ?? (entity ? signatureShapeProblem(entity.headers, 'iam') : undefined);
      if (problem) return refused(problem);
      const roleName = entity ? (new URLSearchParams(entity.body).get('RoleName') ?? '') : '';
      if (!m.identity && !roleName) return refused('the Consul stand-in has no stsEndpoint to learn who signed the login: give its auth method an identity');
      identity = m.identity
        ? { arn: m.identity.roleArn, tags: { ...m.identity.tags } }
        : { arn: `arn:aws:iam::123456789012:role/${roleName}`, tags: { [SERVICE_NAME_TAG]: roleName } };
    }
    const trusted = m.boundIamPrincipalArns.some((b) => b === identity.arn || (m.enableIamEntityDetails && b.endsWith('*') && globMatch(b, identity.arn)));
    if (!trusted) return { answer: 'loginUntrusted', values: { arn: identity.arn } };
    const serviceName = identity.tags[SERVICE_NAME_TAG] ?? '';
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$/.test(serviceName)) {
      const recorded = recordedConsulAnswer('loginUntagged');
      return { status: recorded.status, text: String(recorded.body).replace('""', JSON.stringify(serviceName)) };
    }
    return { serviceName };
  }
}

/** A recorded JSON object with some of its values replaced, its keys (and their order) kept. */
function fromTemplate(template: unknown, values: Record<string, unknown>): Record<string, unknown> {
  const t = template as Record<string, unknown>;
  return Object.fromEntries(Object.keys(t).map((k) => [k, k in values ? values[k] : t[k]]));
}

/** What was given, over Consul's defaults: the defaults' keys first, then the rest of those given. */
function withDefaults(given: Record<string, unknown>, defaults: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of new Set([...Object.keys(defaults), ...Object.keys(given)])) {
    const v = given[k];
    if (v !== undefined && v !== '' && v !== null) out[k] = structuredClone(v);
    else if (k in defaults) out[k] = structuredClone(defaults[k]);
  }
  return out;
}

/** An object's fields in a recorded order; those it does not name just before the indexes (Consul's last fields). */
function inOrder(o: Record<string, unknown>, order: string[]): Record<string, unknown> {
  const rank = (k: string) => (order.includes(k) ? order.indexOf(k) : order.indexOf('CreateIndex') - 0.5);
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => rank(a) - rank(b)));
}

function omit(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

function textHeaders(): Record<string, string> {
  return { ...recordedConsulAnswer('deregisterUnknown').headers };
}

function parseUrl(value: string): URL {
  const url = new URL(value);
  if (!url.protocol || !url.host) throw new Error(`url is invalid: "${value}"`);
  return url;
}

/** Go's textproto canonical form of a header name. */
function canonical(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** Checks a form body as Consul does (each key allowed, with one of its allowed values if any are listed). */
function checkForm(body: string, allowed: Record<string, string[]>): URLSearchParams | string {
  const form = new URLSearchParams(body);
  if (!form.get('Action')) return 'missing field "Action"';
  for (const key of new Set(form.keys())) {
    const values = allowed[key];
    if (!values) return `unexpected field "${key}"`;
    const given = form.getAll(key);
    if (values.length && (given.length !== 1 || !values.includes(given[0]!))) return `unexpected value ${key}=[${given.join(' ')}]`;
  }
  return form;
}

/** Consul's check of the server ID header: present, equal, and signed. */
function serverIdProblem(headers: Map<string, string[]>, want: string): Refusal | undefined {
  const got = (headers.get(CONSUL_IAM_HEADERS.serverId.toLowerCase()) ?? []).join(',');
  if (!got) return { status: recordedConsulAnswer('loginNotPost').status, text: `missing header "${CONSUL_IAM_HEADERS.serverId}"` };
  if (got !== want) return { answer: 'loginServerIdMismatch', values: { serverIdHeaderValue: want, got } };
  const authorization = headers.get('authorization')?.join(',');
  const status = recordedConsulAnswer('loginNotPost').status;
  if (!authorization) return { status, text: 'missing Authorization header' };
  const signed = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(';') ?? [];
  return signed.includes(CONSUL_IAM_HEADERS.serverId.toLowerCase()) ? undefined : { status, text: "header wasn't signed" };
}

/**
 * Without AWS to ask: what AWS would refuse in a request's signature shape (a
 * SigV4 Authorization header scoped to the service, and its X-Amz-Date), worded
 * as Consul passes AWS's refusal on.
 */
function signatureShapeProblem(headers: Map<string, string[]>, service: 'sts' | 'iam'): string | undefined {
  const auth = parseSigV4Authorization(headers.get('authorization')?.[0]);
  const amzDate = headers.get('x-amz-date')?.[0];
  let problem: [string, string] | undefined;
  if (!auth)
    problem = ['IncompleteSignature', 'the Authorization header is not a SigV4 signature (AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…)'];
  else if (auth.service !== service) problem = ['SignatureDoesNotMatch', `Credential should be scoped to correct service: '${service}'.`];
  else if (!auth.signedHeaders.includes('host') || !auth.signedHeaders.includes('x-amz-date'))
    problem = ['SignatureDoesNotMatch', 'host and x-amz-date must be signed headers'];
  else if (Number.isNaN(parseAmzDate(amzDate)) || amzDate!.slice(0, 8) !== auth.date)
    problem = ['IncompleteSignature', `X-Amz-Date ${amzDate ?? '(none)'} is not of the credential scope's date ${auth.date}`];
  if (!problem) return undefined;
  return `received error code 403 from ${service === 'sts' ? 'STS' : 'IAM'}: ${awsErrorAnswer(...problem).body}`;
}

/**
 * Sends a login's signed request to the auth method's endpoint, with the Host
 * and path it was signed for, as Consul does: the XML answer, or what Consul
 * says of a refusal.
 */
function replay(
  endpoint: string,
  signedUrl: URL,
  headers: Map<string, string[]>,
  body: string,
  what: string,
  service: 'STS' | 'IAM',
): Promise<{ xml: string } | { problem: string }> {
  const target = new URL(`${endpoint}${signedUrl.pathname}${signedUrl.search}`);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  const outgoing: Record<string, string[] | string> = Object.fromEntries([...headers].filter(([k]) => k !== 'host' && k !== 'content-length'));
  outgoing.host = signedUrl.host;
  outgoing['content-length'] = String(Buffer.byteLength(body));
  return new Promise((resolve) => {
    const req = send(target, { method: 'POST', headers: outgoing, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.headers['content-type'] !== 'text/xml') resolve({ problem: `body of ${what} is invalid` });
        else if (res.statusCode !== 200) resolve({ problem: `received error code ${res.statusCode} from ${service}: ${text}` });
        else resolve({ xml: text });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve({ problem: `error making request: ${err.message}` }));
    req.end(body);
  });
}

function xmlText(xml: string, element: string): string {
  return new RegExp(`<${element}>([^<]*)</${element}>`).exec(xml)?.[1] ?? '';
}

function xmlTags(xml: string): Record<string, string> {
  const block = /<Tags>(.*?)<\/Tags>/s.exec(xml)?.[1] ?? '';
  return Object.fromEntries(
    [...block.matchAll(/<member>\s*<Key>([^<]*)<\/Key>\s*<Value>([^<]*)<\/Value>\s*<\/member>/g)].map((m) => [unescapeXml(m[1]!), unescapeXml(m[2]!)]),
  );
}

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|amp|apos|quot);/g, (_m, e: string) => ({ lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' })[e]!);
}

/** Consul's glob of BoundIAMPrincipalARNs: `*` matches anything. */
function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(value);
}

/** JSON as Go's encoding/json writes it: `<`, `>` and `&` escaped. */
function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A Consul filter expression of `Field == "value"` (or `!=`, values in double
 * quotes or backquotes) clauses joined by `and`, as a predicate; the text of the
 * refusal when it is not one.
 */
function parseFilter(expression: string | null): ((item: object) => boolean) | string {
  if (expression === null || !expression.trim()) return () => true;
  const clauses: Array<{ path: string[]; equal: boolean; value: string }> = [];
  for (const clause of expression.split(/\s+and\s+/i)) {
    const m = /^\s*([A-Za-z][\w.]*)\s*(==|!=)\s*(?:"([^"]*)"|`([^`]*)`)\s*$/.exec(clause);
    if (!m)
      return `Failed to create boolean expression evaluator: the Consul stand-in understands only Field == "value" (or !=) clauses joined by and, not: ${clause}`;
    clauses.push({ path: m[1]!.split('.'), equal: m[2] === '==', value: m[3] ?? m[4] ?? '' });
  }
  return (item) =>
    clauses.every((c) => {
      const v = c.path.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), item);
      return (String(v ?? '') === c.value) === c.equal;
    });
}
