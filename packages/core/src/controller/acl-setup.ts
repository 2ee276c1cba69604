import { CatalogClient } from '../catalog/client.js';
import { SYNTHETIC_NODE_META } from '../catalog/registration.js';
import { DEFAULT_AUTH_METHOD } from '../consul/login.js';
import type { AclAdmin, AclAuthMethod, AclBindingRule, AclScope } from '../consul/acl-admin.js';
import { ConsulEcsError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';

/** IAM role tags the auth method reads (binding rules cannot use '/' in names). */
export const IAM_TAG_SERVICE_NAME = 'consul.hashicorp.com.service-name';
export const IAM_TAG_NAMESPACE = 'consul.hashicorp.com.namespace';
export const IAM_TAG_GATEWAY_KIND = 'consul.hashicorp.com.gateway-kind';

/** The well-known accessor ID of Consul's anonymous token. */
export const ANONYMOUS_TOKEN_ID = '00000000-0000-0000-0000-000000000002';

/** Names of the ACL objects the controller manages, as consul-ecs names them. */
export const CONTROLLER_ACL_NAMES = {
  anonymousPolicy: 'anonymous-token-policy',
  apiGatewayRole: 'consul-ecs-api-gateway-role',
  apiGatewayPolicy: 'consul-ecs-api-gateway-policy',
  terminatingGatewayRole: 'consul-ecs-terminating-gateway-role',
  meshGatewayRole: 'consul-ecs-mesh-gateway-role',
  meshGatewayPolicy: 'consul-ecs-mesh-gateway-policy',
} as const;

/** Consul Enterprise's default admin partition and namespace. */
export const DEFAULT_PARTITION = 'default';
export const DEFAULT_NAMESPACE = 'default';

export interface ControllerSettings {
  /** IAM roles under this path may log in (`controller.iamRolePath`). */
  iamRolePath: string;
  /** Consul Enterprise admin partitions and namespaces (`controller.partitionsEnabled`). */
  partitionsEnabled: boolean;
  /** The partition the controller manages; `default` when partitions are enabled and none is named. */
  partition?: string;
}

/**
 * The partition the controller works in: undefined on Consul CE. A partition
 * named without `partitionsEnabled` is a configuration error, as in consul-ecs.
 */
export function controllerPartition(settings: ControllerSettings): string | undefined {
  if (settings.partitionsEnabled) return settings.partition || DEFAULT_PARTITION;
  if (settings.partition) {
    throw new ConsulEcsError(
      'config-invalid',
      'controller.partition is set but controller.partitionsEnabled is not: set partitionsEnabled to true (Consul Enterprise) or remove the partition',
    );
  }
  return undefined;
}

/** `arn:aws:iam::<account>:role/<path>*`: the roles the auth method trusts. */
export function boundRoleArnPattern(account: string, iamRolePath: string): string {
  const path = iamRolePath.replace(/^\/+|\/+$/g, '');
  return `arn:aws:iam::${account}:role/${path ? `${path}/` : ''}*`;
}

/** The `iam-ecs-service-token` auth method as the controller configures it. */
export function serviceAuthMethod(account: string, settings: ControllerSettings): AclAuthMethod {
  const method: AclAuthMethod = {
    Name: DEFAULT_AUTH_METHOD,
    Type: 'aws-iam',
    Description: 'AWS IAM auth method for ECS service tokens',
    Config: {
      BoundIAMPrincipalARNs: [boundRoleArnPattern(account, settings.iamRolePath)],
      EnableIAMEntityDetails: true,
      IAMEntityTags: [IAM_TAG_GATEWAY_KIND, IAM_TAG_NAMESPACE, IAM_TAG_SERVICE_NAME],
    },
  };
  if (settings.partitionsEnabled) {
    method.NamespaceRules = [{ Selector: `entity_tags["${IAM_TAG_NAMESPACE}"] != ""`, BindNamespace: `\${entity_tags.${IAM_TAG_NAMESPACE}}` }];
  }
  return method;
}

/** The binding rules of the auth method: a service identity from the role's tag, and a role per gateway kind. */
export function serviceBindingRules(authMethod = DEFAULT_AUTH_METHOD): AclBindingRule[] {
  const gateway = (kind: string, label: string, role: string): AclBindingRule => ({
    Description: `Bind a Consul role from IAM role tag for ECS based ${label} gateways`,
    AuthMethod: authMethod,
    BindType: 'role',
    Selector: `entity_tags["${IAM_TAG_GATEWAY_KIND}"] == "${kind}"`,
    BindName: role,
  });
  return [
    {
      Description: 'Bind a service identity from IAM role tag for ECS',
      AuthMethod: authMethod,
      BindType: 'service',
      BindName: `\${entity_tags.${IAM_TAG_SERVICE_NAME}}`,
    },
    gateway('api-gateway', 'API', CONTROLLER_ACL_NAMES.apiGatewayRole),
    gateway('terminating-gateway', 'Terminating', CONTROLLER_ACL_NAMES.terminatingGatewayRole),
    gateway('mesh-gateway', 'mesh', CONTROLLER_ACL_NAMES.meshGatewayRole),
  ];
}

/** Rules of the API gateway policy: read the mesh, every node and service (in every namespace on Enterprise). */
export function apiGatewayPolicyRules(enterprise: boolean): string {
  const body = '\tnode_prefix "" {\n\t\tpolicy = "read"\n\t}\n\tservice_prefix "" {\n\t\tpolicy = "read"\n\t}';
  return enterprise ? `mesh = "read"\nnamespace_prefix "" {\n${body}\n}` : `mesh = "read"\n${body}`;
}

/** Rules of the mesh gateway policy: write the mesh, read peerings (of every partition, from the default one). */
export function meshGatewayPolicyRules(partition: string | undefined): string {
  const rules = 'mesh = "write"\npeering = "read"';
  return partition === DEFAULT_PARTITION ? `${rules}\npartition_prefix "" {\n\tpeering = "read"\n}` : rules;
}

/** Rules of the anonymous token's policy: read every node and service (cross-datacenter calls arrive anonymous). */
export function anonymousPolicyRules(enterprise: boolean): string {
  const body = '    node_prefix "" {\n      policy = "read"\n    }\n    service_prefix "" {\n      policy = "read"\n    }';
  return enterprise ? `\npartition_prefix "" {\n  namespace_prefix "" {\n${body}\n  }\n}` : `\n${body}`;
}

export interface ControllerSetupInput {
  /** Its server connection and token serve the other calls too (agent, partitions, catalog). */
  admin: AclAdmin;
  settings: ControllerSettings;
  /** The AWS account of the cluster (from the task ARN). */
  account: string;
  clusterArn: string;
  /** The address registered for the cluster's node. */
  nodeIp: string;
  logger?: Logger;
}

/**
 * What the controller sets up in Consul when it starts, each step idempotent:
 * the gateway policies and roles, the `iam-ecs-service-token` auth method and
 * its binding rules, the anonymous token's policy (primary datacenter only)
 * and the cluster's synthetic node, which every task's services register on.
 */
export async function upsertControllerResources(input: ControllerSetupInput): Promise<void> {
  const { admin, settings } = input;
  const log = input.logger ?? silentLogger;
  const partition = controllerPartition(settings);
  const scope: AclScope = { partition };
  const enterprise = settings.partitionsEnabled;

  const self = await admin.http.call<AgentSelf>({ path: '/v1/agent/self', token: admin.token() });
  if (partition) await upsertPartition(admin, partition, log);

  await upsertPolicy(admin, CONTROLLER_ACL_NAMES.apiGatewayPolicy, 'API Gateway token Policy', apiGatewayPolicyRules(enterprise), scope, log);
  await upsertRole(admin, CONTROLLER_ACL_NAMES.apiGatewayRole, 'API Gateway Role for ECS', CONTROLLER_ACL_NAMES.apiGatewayPolicy, scope, log);
  await upsertPolicy(admin, CONTROLLER_ACL_NAMES.meshGatewayPolicy, 'Mesh Gateway token Policy', meshGatewayPolicyRules(partition), scope, log);
  await upsertRole(admin, CONTROLLER_ACL_NAMES.meshGatewayRole, 'Mesh Gateway Role for ECS', CONTROLLER_ACL_NAMES.meshGatewayPolicy, scope, log);
  await upsertRole(admin, CONTROLLER_ACL_NAMES.terminatingGatewayRole, 'Terminating Gateway Role for ECS', undefined, scope, log);

  const method = serviceAuthMethod(input.account, settings);
  await upsertAuthMethod(admin, method, scope, log);
  for (const rule of serviceBindingRules(method.Name)) await upsertBindingRule(admin, rule, scope, log);

  await upsertAnonymousTokenPolicy(admin, self, enterprise, log);

  await new CatalogClient(admin.http, admin.token).register({
    Node: input.clusterArn,
    NodeMeta: { [SYNTHETIC_NODE_META]: 'true' },
    Address: input.nodeIp,
    ...(partition ? { Partition: partition } : {}),
  });
  log.info('registered the cluster node', { node: input.clusterArn });
}

/** The part of `GET /v1/agent/self` the controller reads. */
interface AgentSelf {
  Config?: { Datacenter?: string; PrimaryDatacenter?: string };
  DebugConfig?: { PrimaryDatacenter?: string };
}

async function upsertPartition(admin: AclAdmin, name: string, log: Logger): Promise<void> {
  const { http } = admin;
  const token = admin.token;
  const partitions = (await http.call<Array<{ Name: string }> | null>({ path: '/v1/partitions', token: token() })) ?? [];
  if (partitions.some((p) => p.Name === name)) {
    log.info('found existing partition', { partition: name });
    return;
  }
  await http.call({ method: 'PUT', path: '/v1/partition', body: { Name: name }, token: token() });
  log.info('created partition', { partition: name });
}

async function upsertPolicy(admin: AclAdmin, name: string, description: string, rules: string, scope: AclScope, log: Logger): Promise<void> {
  if (await admin.readPolicyByName(name, scope)) {
    log.info('ACL policy already exists; skipping policy creation', { name });
    return;
  }
  await admin.createPolicy({ Name: name, Description: description, Rules: rules }, scope);
  log.info('ACL policy created', { name });
}

async function upsertRole(admin: AclAdmin, name: string, description: string, policy: string | undefined, scope: AclScope, log: Logger): Promise<void> {
  const role = await admin.readRoleByName(name, scope);
  if (!role) {
    await admin.createRole({ Name: name, Description: description, Policies: policy ? [{ Name: policy }] : [] }, scope);
    log.info('ACL role created', { name });
    return;
  }
  if (policy && !role.Policies?.length && role.ID) {
    await admin.updateRole({ ...role, ID: role.ID, Policies: [{ Name: policy }] }, scope);
    log.info('ACL role updated with its policy', { name, policy });
    return;
  }
  log.info('ACL role already exists; skipping role creation', { name });
}

/**
 * Creates the auth method, or merges our trusted role ARNs and entity tags into
 * an existing one. Everything else an operator set on it (STS/IAM endpoints,
 * the server ID header value, other principals and tags) is kept.
 */
async function upsertAuthMethod(admin: AclAdmin, ours: AclAuthMethod, scope: AclScope, log: Logger): Promise<void> {
  const current = await admin.readAuthMethod(ours.Name, scope);
  if (!current) {
    await admin.createAuthMethod(ours, scope);
    log.info('ACL auth method created', { name: ours.Name });
    return;
  }
  const config = current.Config ?? {};
  const merge = (key: string) => [...new Set([...strings(config[key]), ...strings(ours.Config?.[key])])].sort();
  const principals = merge('BoundIAMPrincipalARNs');
  const tags = merge('IAMEntityTags');
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  const needsEntityDetails = config.EnableIAMEntityDetails !== true;
  if (same(principals, strings(config.BoundIAMPrincipalARNs)) && same(tags, strings(config.IAMEntityTags)) && !needsEntityDetails) {
    log.info('ACL auth method already exists; skipping update', { name: ours.Name });
    return;
  }
  await admin.updateAuthMethod(
    {
      ...current,
      NamespaceRules: current.NamespaceRules?.length ? current.NamespaceRules : ours.NamespaceRules,
      Config: { ...config, BoundIAMPrincipalARNs: principals, IAMEntityTags: tags, EnableIAMEntityDetails: true },
    },
    scope,
  );
  log.info('ACL auth method updated: trusted role ARNs and IAM entity tags merged', { name: ours.Name, arns: principals.join(',') });
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}

/** Creates a binding rule, or updates the one with the same bind name and description. */
async function upsertBindingRule(admin: AclAdmin, rule: AclBindingRule, scope: AclScope, log: Logger): Promise<void> {
  const existing = (await admin.listBindingRules(rule.AuthMethod, scope)).find((r) => r.BindName === rule.BindName && r.Description === rule.Description);
  if (existing?.ID) {
    await admin.updateBindingRule({ ...rule, ID: existing.ID }, scope);
    log.info('ACL binding rule updated', { method: rule.AuthMethod, 'bind-type': rule.BindType, 'bind-name': rule.BindName });
  } else {
    await admin.createBindingRule(rule, scope);
    log.info('ACL binding rule created', { method: rule.AuthMethod, 'bind-type': rule.BindType, 'bind-name': rule.BindName });
  }
}

/**
 * In the primary datacenter, gives the anonymous token read access to nodes and
 * services: mesh gateways make cross-datacenter calls, which arrive without a
 * token. The token is global (replicated), so secondary datacenters skip this.
 */
async function upsertAnonymousTokenPolicy(admin: AclAdmin, self: AgentSelf, enterprise: boolean, log: Logger): Promise<void> {
  const dc = self.Config?.Datacenter;
  const primary = self.Config?.PrimaryDatacenter || self.DebugConfig?.PrimaryDatacenter;
  if (!dc || !primary) {
    throw new ConsulEcsError('consul-bad-response', "Consul's /v1/agent/self names no datacenter or primary datacenter");
  }
  if (dc !== primary) {
    log.info('not the primary datacenter; leaving the anonymous token alone', { datacenter: dc, 'primary-datacenter': primary });
    return;
  }
  // The anonymous token and its policy live in the default partition and namespace.
  const scope: AclScope = enterprise ? { partition: DEFAULT_PARTITION, namespace: DEFAULT_NAMESPACE } : {};
  const token = await admin.readToken(ANONYMOUS_TOKEN_ID, scope);
  if (!token) throw new ConsulEcsError('consul-bad-response', 'Consul has no anonymous token to configure');
  const name = CONTROLLER_ACL_NAMES.anonymousPolicy;
  if (token.Policies?.some((p) => p.Name === name)) {
    log.info('anonymous token policy is already attached', { policy: name });
    return;
  }
  if (!(await admin.readPolicyByName(name, scope))) {
    await admin.createPolicy({ Name: name, Description: 'Anonymous token Policy', Rules: anonymousPolicyRules(enterprise) }, scope);
    log.info('ACL policy created', { name });
  }
  await admin.updateToken({ ...token, Policies: [...(token.Policies ?? []), { ID: '', Name: name }] }, scope);
  log.info('configured the anonymous token', { policy: name });
}
