import type { AclToken } from './acl.js';
import { ConsulApiError, LIST_MAX_RESPONSE_BYTES, type ConsulHttpClient } from './http-client.js';

/** A link to a policy or role by ID or name (`structs.ACLTokenPolicyLink`, `ACLLink`). */
export interface AclLink {
  ID?: string;
  Name?: string;
}

/** `structs.ACLAuthMethod` (the fields consul-ecs sets). */
export interface AclAuthMethod {
  Name: string;
  Type: string;
  DisplayName?: string;
  Description?: string;
  Config?: Record<string, unknown>;
  NamespaceRules?: Array<{ Selector?: string; BindNamespace?: string }>;
  Namespace?: string;
  Partition?: string;
}

/** `structs.ACLBindingRule`. */
export interface AclBindingRule {
  ID?: string;
  Description?: string;
  AuthMethod: string;
  Selector?: string;
  BindType: 'service' | 'node' | 'role' | 'policy' | 'templated-policy';
  BindName: string;
  Namespace?: string;
  Partition?: string;
}

/** `structs.ACLPolicy`. */
export interface AclPolicy {
  ID?: string;
  Name: string;
  Description?: string;
  Rules?: string;
  Datacenters?: string[];
  Namespace?: string;
  Partition?: string;
}

/** `structs.ACLRole`. */
export interface AclRole {
  ID?: string;
  Name: string;
  Description?: string;
  Policies?: AclLink[];
  ServiceIdentities?: Array<{ ServiceName: string; Datacenters?: string[] }>;
  NodeIdentities?: Array<{ NodeName: string; Datacenter: string }>;
  Namespace?: string;
  Partition?: string;
}

/** An entry of `GET /v1/acl/tokens` (`structs.ACLTokenListStub`): no secret. */
export interface AclTokenListEntry {
  AccessorID: string;
  Description?: string;
  AuthMethod?: string;
  Local?: boolean;
  Namespace?: string;
  Partition?: string;
  Policies?: AclLink[];
}

/** Enterprise scope of a call; empty on Consul CE. */
export interface AclScope {
  partition?: string;
  namespace?: string;
}

/**
 * Whether a Consul answer means "no such ACL object": 404, or 403 with
 * "ACL not found" (what older servers answer for reads by name).
 */
export function isAclNotFound(err: unknown): boolean {
  return err instanceof ConsulApiError && (err.status === 404 || (err.status === 403 && /ACL not found/i.test(err.body)));
}

/**
 * Whether Consul refused a request because it does not know the request's token
 * (403 "ACL not found"): a token it never issued, or one a server has not
 * replicated yet.
 */
export function isUnknownToken(err: unknown): err is ConsulApiError {
  return err instanceof ConsulApiError && err.status === 403 && isAclNotFound(err);
}

/**
 * Administration of Consul's ACL system with a privileged token (the
 * controller's bootstrap token): auth methods, binding rules, policies, roles
 * and tokens. Reads of a missing object return null.
 */
export class AclAdmin {
  constructor(
    /** The server connection in use; replaced on failover. */
    public http: ConsulHttpClient,
    readonly token: () => string | undefined,
  ) {}

  async #read<T>(path: string, scope: AclScope = {}): Promise<T | null> {
    try {
      return await this.http.call<T>({ path, token: this.token(), query: q(scope) });
    } catch (err) {
      if (isAclNotFound(err)) return null;
      throw err;
    }
  }

  #write<T>(method: 'PUT' | 'DELETE', path: string, body: unknown, scope: AclScope = {}): Promise<T> {
    return this.http.call<T>({ method, path, body, token: this.token(), query: q(scope) });
  }

  readAuthMethod(name: string, scope?: AclScope): Promise<AclAuthMethod | null> {
    return this.#read(`/v1/acl/auth-method/${encodeURIComponent(name)}`, scope);
  }

  createAuthMethod(method: AclAuthMethod, scope?: AclScope): Promise<AclAuthMethod> {
    return this.#write('PUT', '/v1/acl/auth-method', method, scope);
  }

  updateAuthMethod(method: AclAuthMethod, scope?: AclScope): Promise<AclAuthMethod> {
    return this.#write('PUT', `/v1/acl/auth-method/${encodeURIComponent(method.Name)}`, method, scope);
  }

  async listBindingRules(authMethod: string, scope?: AclScope): Promise<AclBindingRule[]> {
    return (
      (await this.http.call<AclBindingRule[] | null>({
        path: '/v1/acl/binding-rules',
        query: { authmethod: authMethod, ...q(scope ?? {}) },
        token: this.token(),
      })) ?? []
    );
  }

  createBindingRule(rule: AclBindingRule, scope?: AclScope): Promise<AclBindingRule> {
    return this.#write('PUT', '/v1/acl/binding-rule', rule, scope);
  }

  updateBindingRule(rule: AclBindingRule & { ID: string }, scope?: AclScope): Promise<AclBindingRule> {
    return this.#write('PUT', `/v1/acl/binding-rule/${encodeURIComponent(rule.ID)}`, rule, scope);
  }

  readPolicyByName(name: string, scope?: AclScope): Promise<AclPolicy | null> {
    return this.#read(`/v1/acl/policy/name/${encodeURIComponent(name)}`, scope);
  }

  createPolicy(policy: AclPolicy, scope?: AclScope): Promise<AclPolicy> {
    return this.#write('PUT', '/v1/acl/policy', policy, scope);
  }

  readRoleByName(name: string, scope?: AclScope): Promise<AclRole | null> {
    return this.#read(`/v1/acl/role/name/${encodeURIComponent(name)}`, scope);
  }

  createRole(role: AclRole, scope?: AclScope): Promise<AclRole> {
    return this.#write('PUT', '/v1/acl/role', role, scope);
  }

  updateRole(role: AclRole & { ID: string }, scope?: AclScope): Promise<AclRole> {
    return this.#write('PUT', `/v1/acl/role/${encodeURIComponent(role.ID)}`, role, scope);
  }

  readToken(accessorId: string, scope?: AclScope): Promise<AclToken | null> {
    return this.#read(`/v1/acl/token/${encodeURIComponent(accessorId)}`, scope);
  }

  updateToken(token: AclToken, scope?: AclScope): Promise<AclToken> {
    return this.#write('PUT', `/v1/acl/token/${encodeURIComponent(token.AccessorID)}`, token, scope);
  }

  async listTokens(scope?: AclScope): Promise<AclTokenListEntry[]> {
    return (
      (await this.http.call<AclTokenListEntry[] | null>({
        path: '/v1/acl/tokens',
        query: q(scope ?? {}),
        token: this.token(),
        maxResponseBytes: LIST_MAX_RESPONSE_BYTES,
      })) ?? []
    );
  }

  /** Deletes a token by accessor ID; a token already gone counts as deleted. */
  async deleteToken(accessorId: string, scope?: AclScope): Promise<void> {
    try {
      await this.#write('DELETE', `/v1/acl/token/${encodeURIComponent(accessorId)}`, undefined, scope);
    } catch (err) {
      if (!isAclNotFound(err)) throw err;
    }
  }
}

function q(scope: AclScope): Record<string, string | undefined> {
  return { partition: scope.partition, ns: scope.namespace };
}
