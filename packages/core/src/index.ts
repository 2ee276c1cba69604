// The public API of @consul-ecs-ts/core, grouped by what a caller does with it.
// Anything not listed here is internal to the library and may change at any
// time; api/core.api.md records this surface, and `npm run api:check` fails
// when it changes without the report being updated (`npm run api:update`).

// Use cases: what the consul-ecs commands run, one call each.
export { meshInit, type MeshInitOptions, type MeshInitResult, type BootstrapExecutable } from './mesh/mesh-init.js';
export { runHealthSync, runHealthSyncContainer, type HealthSyncRunOptions, type HealthSyncContainerOptions } from './health/run-health-sync.js';
export { loginInTask, type LoginInTaskOptions } from './mesh/task-login.js';
export { runController, CONTROLLER_POLLING_INTERVAL_MS, type ControllerRunOptions } from './controller/controller.js';
export type { ControllerSettings } from './controller/acl-setup.js';
export type { ReapResult } from './controller/task-reaper.js';
export { BOOTSTRAP_FILES } from './mesh/bootstrap-files.js';

// Configuration: CONSUL_ECS_CONFIG_JSON read, validated, defaulted and interpreted.
export { loadConfig, type LoadConfigOptions } from './config/load.js';
export { parseConfigJson } from './config/json.js';
export { validateConfig, ConfigValidationError } from './config/validate.js';
export { resolveConfig, CONFIG_DEFAULTS, serviceName, gatewayName, isGateway, transparentProxyEnabled, consulDnsEnabled } from './config/resolve.js';
export {
  resolveServerAddresses,
  type ResolveServerAddressesOptions,
  type ServerAddressLookup,
  type ServerAddressCommandRunner,
  type ServerAddressCommandResult,
} from './config/server-addresses.js';
export { parseGoDiscoverArgs, parseGoDiscoverConfig, type GoDiscoverCommand } from './config/go-discover.js';
// The configuration document as written (Config*) and with the defaults applied (Resolved*).
export type {
  ConsulEcsConfig,
  ConfigConsulLogin,
  ConfigController,
  ConfigConsulServers,
  ConfigTlsSettings,
  ConfigGrpcSettings,
  ConfigHttpSettings,
  ConfigService,
  ConfigServiceWeights,
  ConfigNetworkResilience,
  ConfigOutlierDetection,
  ConfigProxy,
  ConfigUpstream,
  ConfigMeshGateway,
  ConfigExpose,
  ConfigExposePath,
  ConfigGateway,
  ConfigGatewayAddress,
  ConfigTransparentProxy,
  ConfigLogLevel,
  ConfigGatewayKind,
  ConfigMeshGatewayMode,
  ConfigUpstreamDestinationType,
  ConfigExposeProtocol,
  ConfigOpaqueObject,
  ResolvedConfig,
  ResolvedConsulLogin,
  ResolvedController,
  ResolvedTlsSettings,
  ResolvedConsulServers,
  ResolvedService,
  ResolvedNetworkResilience,
  ResolvedOutlierDetection,
  ResolvedProxy,
  ResolvedUpstream,
  ResolvedGateway,
  ResolvedGatewayAddress,
  ResolvedTransparentProxy,
} from './config/types.js';

// Task metadata and ECS: the task's own metadata, and the ECS API.
export {
  TaskMetadataClient,
  taskInfo,
  type TaskMetadataClientOptions,
  type TaskInfo,
  type EcsTaskMetadata,
  type EcsContainerMetadata,
  type ContainerHealthStatus,
} from './ecs/task-metadata.js';
export { containerStopped } from './ecs/container-status.js';
export { parseTaskArn, type TaskArn } from './aws/arn.js';
export { EcsApiClient, ecsEndpoint, type EcsApiClientOptions, type EcsTask, type EcsTag } from './ecs/ecs-api.js';

// AWS credentials and signing: credential providers (the AWS SDK's fit as they are), SigV4, the STS/IAM calls.
export {
  defaultCredentialProvider,
  fromStaticCredentials,
  fromContainerCredentials,
  refreshing,
  type AwsCredentials,
  type CredentialProvider,
  type DefaultCredentialsOptions,
  type ContainerCredentialsOptions,
  type RefreshingOptions,
} from './aws/credentials.js';
export { signQueryRequest, signJsonRequest, formBody, type SignRequestInput, type SignedRequest } from './aws/sigv4.js';
export { callQueryApi, callEc2Api, AwsApiError, STS_API_VERSION, IAM_API_VERSION, EC2_API_VERSION, type QueryCallInput } from './aws/query-client.js';
export { discoverAwsAddresses, type DiscoverAwsOptions, type AwsDiscoverAddressType } from './aws/ec2-discover.js';
export { callJsonApi, type JsonCallInput } from './aws/json-client.js';
export { createLoginBearerToken, decodeLoginBearerToken, type BearerTokenOptions } from './aws/sigv4-login.js';

// Consul client, ACL and login: the HTTP API client, IAM login and logout, ACL administration.
export { ConsulHttpClient, ConsulApiError, type ConsulClientOptions, type ConsulTlsOptions, type ConsulRequest } from './consul/http-client.js';
export { consulClientFor } from './mesh/consul-connection.js';
export { loginWithAwsIam, DEFAULT_AUTH_METHOD, type AwsIamLoginOptions } from './consul/login.js';
export { aclLogin, aclLogout, waitForTokenReplication, type AclToken, type LoginInput, type WaitForTokenOptions } from './consul/acl.js';
export {
  AclAdmin,
  type AclAuthMethod,
  type AclBindingRule,
  type AclPolicy,
  type AclRole,
  type AclTokenListEntry,
  type AclLink,
  type AclScope,
} from './consul/acl-admin.js';
export { readTokenFile } from './io/token-file.js';

// Catalog and registration: the task's service, proxy and gateway registrations, and the catalog API.
export { CatalogClient } from './catalog/client.js';
export {
  serviceRegistrations,
  gatewayRegistration,
  type ServiceSpec,
  type ProxySpec,
  type GatewaySpec,
  type RegistrationContext,
  type TaskRegistrations,
} from './catalog/registration.js';
export type {
  CatalogRegistration,
  AgentService,
  HealthCheck,
  HealthStatus,
  ServiceKind,
  GatewayKind,
  MeshGatewayMode,
  ServiceAddress,
  Upstream,
  ExposePath,
  ConnectProxyConfig,
} from './catalog/types.js';

// Health sync: ECS container health as Consul check status.
export { resolveContainerHealth, type EcsHealth } from './health/sync.js';

// Envoy bootstrap: the bootstrap document Envoy starts with, talking ADS to the Consul servers.
export { generateEnvoyBootstrap, renderEnvoyBootstrap } from './envoy/bootstrap.js';
export type {
  EnvoyBootstrapInput,
  EnvoyProxyService,
  EnvoyXdsServers,
  EnvoyXdsTls,
  EnvoyPrometheusOptions,
  ConsulAccessLogsConfig,
} from './envoy/bootstrap-input.js';
// The bootstrap document's parts, as far as they are typed.
export type {
  EnvoyBootstrap,
  EnvoyJsonObject,
  EnvoyTypedConfig,
  EnvoySocketAddress,
  EnvoyPipe,
  EnvoyAddress,
  EnvoyDataSource,
  EnvoyNode,
  EnvoyNodeMetadata,
  EnvoyAccessLog,
  EnvoyAdmin,
  EnvoyLayeredRuntime,
  EnvoyClusterLoadAssignment,
  EnvoyHttp2ProtocolOptions,
  EnvoyHttpProtocolOptionsMap,
  EnvoyStringMatcher,
  EnvoySubjectAltNameMatcher,
  EnvoyUpstreamTlsContext,
  EnvoyTransportSocket,
  EnvoyCluster,
  EnvoyRoute,
  EnvoyHttpConnectionManager,
  EnvoyListener,
  EnvoySecret,
  EnvoyStaticResources,
  EnvoyTagSpecifier,
  EnvoyStatsConfig,
  EnvoyStatsSink,
  EnvoyAdsConfigSource,
  EnvoyGrpcService,
  EnvoyAdsApiConfigSource,
  EnvoyDynamicResources,
} from './envoy/types.js';

// Transparent proxy: the iptables rules and resolv.conf of a task's network namespace.
export {
  transparentProxyRules,
  formatIptablesRule,
  type IptablesRule,
  type TransparentProxyRulesInput,
  type TransparentProxyServiceInfo,
} from './tproxy/iptables.js';
export {
  applyTransparentProxy,
  TransparentProxyError,
  type ApplyTransparentProxyOptions,
  type ApplyTransparentProxyResult,
  type IptablesRunner,
  type IptablesRunResult,
} from './tproxy/apply.js';
export { assertTransparentProxySupported } from './tproxy/supported.js';

// Errors, logging, clock, retry, and the options every call shares.
export { ConsulEcsError, describeError, writableDirHint, type ConsulEcsErrorCode } from './util/errors.js';
export type { IoOptions, Env } from './util/options.js';
export { createLogger, parseLogLevel, silentLogger, type Logger, type LoggerOptions, type LogLevel, type LogFields } from './util/logger.js';
export { systemClock, type Clock } from './util/clock.js';
export { retry, type RetryOptions, type BackoffOptions } from './util/retry.js';
