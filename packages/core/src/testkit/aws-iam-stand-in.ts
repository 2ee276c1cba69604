import { randomBytes, randomInt } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IAM_API_VERSION } from '../aws/query-client.js';
import type { ContainerCredentialsDocument, CredentialsSource } from './ecs-agent-simulator.js';
import { LoopbackServer, readBody, respond } from './loopback-server.js';
import { recordedAwsAnswer, replaceElements } from './recorded.js';
import { parseAmzDate, parseSigV4Authorization, sameSignature, sigV4Signature, type SigV4Authorization } from './sigv4-check.js';

const DEFAULT_ACCOUNT = '123456789012';
/** How far a request's signing time may be from now, as AWS allows. */
const DEFAULT_CLOCK_SKEW_MS = 15 * 60_000;

export interface StandInRole {
  name: string;
  /** IAM path. Default `/`. */
  path?: string;
  tags?: Record<string, string>;
  /** May the role read itself with iam:GetRole (what Consul's aws-iam auth method needs)? Default true. */
  allowGetRole?: boolean;
}

/** A role as {@link AwsIamStandIn} holds it. */
export interface StandInRoleInfo {
  name: string;
  path: string;
  arn: string;
  /** `AROA…`: the first part of an assumed session's `UserId`. */
  roleId: string;
  tags: Record<string, string>;
  allowGetRole: boolean;
  createDate: string;
}

export interface AwsIamStandInOptions {
  host?: string;
  port?: number;
  account?: string;
  /** Default `aws`. */
  partition?: string;
  roles?: StandInRole[];
  /** How far a signature's time may be from now. Default 15 minutes (as AWS). */
  clockSkewMs?: number;
  /** The time now, in milliseconds. Default `Date.now`. */
  now?: () => number;
}

/** A request the stand-in served, for assertions. */
export interface AwsStandInRequest {
  action: string;
  /** The access key it was signed with, if its Authorization header names one. */
  accessKeyId?: string;
  /** The Host header it was signed for (e.g. `sts.us-east-1.amazonaws.com` when Consul replays a login). */
  host?: string;
  status: number;
  /** The AWS error code of a refusal. */
  error?: string;
}

interface Session {
  role: string;
  sessionName: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Values for {@link getCallerIdentityXml}: an assumed role's session. */
export interface CallerIdentityValues {
  account: string;
  roleName: string;
  roleId: string;
  sessionName: string;
  partition?: string;
  requestId?: string;
}

/** The `sts:GetCallerIdentity` answer of an assumed role's session, as AWS (recorded from moto) gives it. */
export function getCallerIdentityXml(v: CallerIdentityValues): string {
  return replaceElements(recordedAwsAnswer('getCallerIdentity').body, {
    UserId: `${v.roleId}:${v.sessionName}`,
    Account: v.account,
    Arn: `arn:${v.partition ?? 'aws'}:sts::${v.account}:assumed-role/${v.roleName}/${v.sessionName}`,
    RequestId: v.requestId ?? requestId(),
  });
}

/** Values for {@link getRoleXml}. */
export interface RoleValues {
  account: string;
  roleName: string;
  roleId: string;
  path?: string;
  tags?: Record<string, string>;
  partition?: string;
  /** ISO 8601. Default now. */
  createDate?: string;
  requestId?: string;
}

/** The `iam:GetRole` answer for a role, as AWS (recorded from moto) gives it. */
export function getRoleXml(v: RoleValues): string {
  const path = v.path ?? '/';
  const recorded = recordedAwsAnswer('getRole').body;
  const now = new Date().toISOString();
  const trust = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' }, Action: 'sts:AssumeRole' }] };
  const xml = replaceElements(recorded, {
    Path: path,
    RoleName: v.roleName,
    RoleId: v.roleId,
    Arn: `arn:${v.partition ?? 'aws'}:iam::${v.account}:role${path}${v.roleName}`,
    CreateDate: v.createDate ?? now,
    AssumeRolePolicyDocument: encodeURIComponent(JSON.stringify(trust)).replace(/%2F/g, '/'),
    LastUsedDate: now,
    RequestId: v.requestId ?? requestId(),
  });
  // The recorded role has one tag: its <member> is the pattern of each.
  return xml.replace(/<Tags>(.*?)<\/Tags>/, (_all, member: string) => {
    const tags = Object.entries(v.tags ?? {});
    return tags.length ? `<Tags>${tags.map(([Key, Value]) => replaceElements(member, { Key, Value })).join('')}</Tags>` : '';
  });
}

/** An AWS error answer (status, content type and XML as moto gives them) with a code and message. */
export function awsErrorAnswer(code: string, message: string, status?: number): { status: number; contentType: string; body: string } {
  const recorded = recordedAwsAnswer(code === 'InvalidClientTokenId' ? 'invalidClientTokenId' : 'signatureDoesNotMatch');
  return { status: status ?? recorded.status, contentType: recorded.contentType, body: replaceElements(recorded.body, { Code: code, Message: message }) };
}

/**
 * A stand-in for AWS STS and IAM on loopback, for the calls of a Consul login:
 * `sts:GetCallerIdentity` and `iam:GetRole`, answered with the XML recorded from
 * moto. It hands out session credentials for its roles ({@link credentialsFor},
 * a credentials source for {@link EcsAgentSimulator}) and answers only requests
 * signed with them: it checks each request's SigV4 signature (its scope, time
 * and value) and refuses as AWS does. Point Consul's auth method (or the
 * ConsulStandIn's) at {@link url} as its STS and IAM endpoint.
 */
export class AwsIamStandIn {
  readonly account: string;
  readonly partition: string;
  /** Requests served, by action, and refusals. */
  readonly hits = { getCallerIdentity: 0, getRole: 0, refused: 0 };
  /** Every request served, in order. */
  readonly requests: AwsStandInRequest[] = [];

  readonly #server: LoopbackServer;
  readonly #roles = new Map<string, StandInRoleInfo>();
  readonly #sessions = new Map<string, Session>();
  readonly #skewMs: number;
  readonly #now: () => number;

  constructor(opts: AwsIamStandInOptions = {}) {
    this.account = opts.account ?? DEFAULT_ACCOUNT;
    this.partition = opts.partition ?? 'aws';
    this.#server = new LoopbackServer(opts.host, opts.port);
    this.#skewMs = opts.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
    this.#now = opts.now ?? Date.now;
    for (const role of opts.roles ?? []) this.addRole(role);
  }

  /** Its endpoint, for STS and IAM alike: `http://127.0.0.1:<port>`. */
  get url(): string {
    return this.#server.origin;
  }

  async start(): Promise<this> {
    await this.#server.start((req, res) => this.#handle(req, res));
    return this;
  }

  async stop(): Promise<void> {
    await this.#server.stop();
  }

  /** Adds (or replaces) a role. */
  addRole(spec: StandInRole): StandInRoleInfo {
    const path = spec.path ?? '/';
    if (!path.startsWith('/') || !path.endsWith('/')) throw new Error(`an IAM path starts and ends with "/": ${path}`);
    const info: StandInRoleInfo = {
      name: spec.name,
      path,
      arn: `arn:${this.partition}:iam::${this.account}:role${path}${spec.name}`,
      roleId: this.#roles.get(spec.name)?.roleId ?? `AROA${randomChars(17)}`,
      tags: { ...spec.tags },
      allowGetRole: spec.allowGetRole ?? true,
      createDate: new Date(this.#now()).toISOString(),
    };
    this.#roles.set(spec.name, info);
    return info;
  }

  role(name: string): StandInRoleInfo {
    const role = this.#roles.get(name);
    if (!role) throw new Error(`the AWS stand-in has no role named ${name}`);
    return role;
  }

  /**
   * New session credentials of a role, as `sts:AssumeRole` gives them (and the ECS
   * agent serves them to the task, with the role's ARN).
   */
  issueCredentials(roleName: string, opts: { sessionName?: string; durationSeconds?: number } = {}): ContainerCredentialsDocument {
    const role = this.role(roleName);
    const doc = {
      AccessKeyId: `ASIA${randomChars(16)}`,
      SecretAccessKey: randomBytes(30).toString('base64'),
      Token: randomBytes(180).toString('base64'),
      Expiration: new Date(this.#now() + (opts.durationSeconds ?? 3600) * 1000).toISOString(),
      RoleArn: role.arn,
    };
    this.#sessions.set(doc.AccessKeyId, {
      role: roleName,
      sessionName: opts.sessionName ?? 'ecs-task',
      secretAccessKey: doc.SecretAccessKey,
      sessionToken: doc.Token,
    });
    return doc;
  }

  /** A credentials source for {@link EcsAgentSimulator}: fresh session credentials of the role on each call. */
  credentialsFor(roleName: string, opts: { sessionName?: string; durationSeconds?: number } = {}): CredentialsSource {
    this.role(roleName);
    return async () => this.issueCredentials(roleName, opts);
  }

  /** Accepts requests signed with these (e.g. fixed) credentials, as a session of the role. */
  trustCredentials(credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }, roleName: string, sessionName = 'ecs-task'): void {
    this.role(roleName);
    this.#sessions.set(credentials.accessKeyId, {
      role: roleName,
      sessionName,
      secretAccessKey: credentials.secretAccessKey,
      sessionToken: credentials.sessionToken,
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const params = new URLSearchParams(body);
    const action = req.method === 'POST' ? (params.get('Action') ?? '') : '';
    const auth = parseSigV4Authorization(req.headers.authorization);
    const record: AwsStandInRequest = { action, status: 200 };
    if (auth) record.accessKeyId = auth.accessKeyId;
    if (req.headers.host) record.host = req.headers.host;
    this.requests.push(record);
    const refuse = (code: string, message: string, status?: number) => {
      const answer = awsErrorAnswer(code, message, status);
      record.status = answer.status;
      record.error = code;
      this.hits.refused++;
      respond(res, answer.status, { 'content-type': answer.contentType }, answer.body);
    };

    if (req.method !== 'POST') return refuse('InvalidAction', 'the AWS stand-in serves POST requests of the Query API', 400);
    const service = action === 'GetCallerIdentity' ? 'sts' : action === 'GetRole' ? 'iam' : undefined;
    if (!service) return refuse('InvalidAction', `Could not find operation ${action} for version ${params.get('Version') ?? ''}`, 400);
    const denied = this.#checkSignature(req, body, auth, service);
    if (denied) return refuse(...denied);
    const session = this.#sessions.get(auth!.accessKeyId)!;
    const caller = this.role(session.role);
    const ok = (xml: string) => respond(res, 200, { 'content-type': recordedAwsAnswer('getCallerIdentity').contentType }, xml);

    if (action === 'GetCallerIdentity') {
      this.hits.getCallerIdentity++;
      return ok(
        getCallerIdentityXml({
          account: this.account,
          partition: this.partition,
          roleName: caller.name,
          roleId: caller.roleId,
          sessionName: session.sessionName,
        }),
      );
    }
    if (params.get('Version') !== IAM_API_VERSION)
      return refuse('InvalidAction', `Could not find operation GetRole for version ${params.get('Version') ?? ''}`, 400);
    const name = params.get('RoleName') ?? '';
    const target = this.#roles.get(name);
    if (target !== caller || !caller.allowGetRole) {
      const callerArn = `arn:${this.partition}:sts::${this.account}:assumed-role/${caller.name}/${session.sessionName}`;
      if (!target) return refuse('NoSuchEntity', `The role with name ${name} cannot be found.`, 404);
      return refuse('AccessDenied', `User: ${callerArn} is not authorized to perform: iam:GetRole on resource: role ${name}`, 403);
    }
    this.hits.getRole++;
    return ok(
      getRoleXml({
        account: this.account,
        partition: this.partition,
        roleName: target.name,
        roleId: target.roleId,
        path: target.path,
        tags: target.tags,
        createDate: target.createDate,
      }),
    );
  }

  /** Why a request's signature is refused (code, message), if it is. */
  #checkSignature(req: IncomingMessage, body: string, auth: SigV4Authorization | undefined, service: string): [string, string] | undefined {
    if (!req.headers.authorization) return ['MissingAuthenticationToken', 'Request is missing Authentication Token'];
    if (!auth) return ['IncompleteSignature', `Authorization header requires Credential, SignedHeaders and Signature: ${req.headers.authorization}`];
    const session = this.#sessions.get(auth.accessKeyId);
    if (!session) return ['InvalidClientTokenId', 'The security token included in the request is invalid.'];
    if (session.sessionToken && req.headers['x-amz-security-token'] !== session.sessionToken) {
      return ['InvalidClientTokenId', 'The security token included in the request is invalid.'];
    }
    if (auth.service !== service) return ['SignatureDoesNotMatch', `Credential should be scoped to correct service: '${service}'.`];
    for (const h of ['host', 'x-amz-date']) if (!auth.signedHeaders.includes(h)) return ['SignatureDoesNotMatch', `'${h}' must be a signed header`];
    if (session.sessionToken && !auth.signedHeaders.includes('x-amz-security-token'))
      return ['SignatureDoesNotMatch', "'x-amz-security-token' must be a signed header"];
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    const signedAt = parseAmzDate(amzDate);
    if (Number.isNaN(signedAt) || amzDate.slice(0, 8) !== auth.date)
      return ['IncompleteSignature', `X-Amz-Date ${amzDate} is not the date of the credential scope ${auth.date}`];
    const now = this.#now();
    if (Math.abs(now - signedAt) > this.#skewMs) {
      return ['SignatureDoesNotMatch', `Signature expired: ${amzDate} is now earlier than ${amzDateOf(now - this.#skewMs)} (${amzDateOf(now)} - 15 min.)`];
    }
    const expected = sigV4Signature({ method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers, body }, auth, session.secretAccessKey);
    if (!sameSignature(expected, auth.signature)) {
      const { Code, Message } = recordedAwsAnswer('signatureDoesNotMatch').values;
      return [Code!, Message!];
    }
    return undefined;
  }
}

function amzDateOf(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '');
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function randomChars(n: number, alphabet = ALPHANUMERIC): string {
  let out = '';
  for (let i = 0; i < n; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** A request ID like AWS's (moto's: 52 letters and digits). */
function requestId(): string {
  return randomChars(52, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789');
}
