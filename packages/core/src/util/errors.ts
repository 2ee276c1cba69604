/**
 * Why a {@link ConsulEcsError} was raised: a stable, machine-readable reason a
 * caller can branch on. Each code says what failed and what to do about it.
 */
export type ConsulEcsErrorCode =
  // AWS: credentials, signing and the STS/IAM/ECS APIs
  /** An AWS Query API (STS, IAM) answered with an error (see `AwsApiError.awsCode`); check the role's permissions and the endpoint. */
  | 'aws-api-error'
  /** A string given as an ARN is not one; pass `arn:partition:service:region:account:resource`. */
  | 'aws-arn-invalid'
  /** The IAM principal is neither a role, an assumed role nor a user; log in with an IAM role or user. */
  | 'aws-arn-unsupported'
  /** An AWS API answered HTTP 200 with a body that cannot be read; check the endpoint points at AWS (or a faithful stand-in). */
  | 'aws-bad-response'
  /** The AWS credentials expired and could not be refreshed; check the credentials source (task role, environment keys). */
  | 'aws-credentials-expired'
  /** The AWS credentials or their source are misconfigured (half a key pair, a bad `AWS_CONTAINER_CREDENTIALS_FULL_URI`); fix the setting named. */
  | 'aws-credentials-invalid'
  /** No AWS credentials source is configured; run with a task role, or set `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or the config's keys. */
  | 'aws-credentials-missing'
  /** The container credentials endpoint could not be read or gave an unusable answer; check the task role and the authorization token. */
  | 'aws-credentials-unavailable'
  /** An AWS endpoint override is not a plain URL; use `https://host[:port]` with no query string. */
  | 'aws-endpoint-invalid'
  /** No AWS region to sign with; set `consulLogin.region`, `AWS_REGION`, or run in an ECS task. */
  | 'aws-region-missing'
  /** An AWS endpoint could not be reached; check the task's network route (NAT, VPC endpoint) to it. */
  | 'aws-unreachable'
  // Configuration
  /** The consul-ecs configuration is not valid JSON or fails the schema (see `ConfigValidationError.problems`); fix each problem listed. */
  | 'config-invalid'
  /** `CONSUL_ECS_CONFIG_JSON` is unset or empty; set it to the consul-ecs configuration. */
  | 'config-missing'
  /** No service name: neither the config's name nor the task family gives one; set `service.name` (or `gateway.name`). */
  | 'service-name-missing'
  // Consul servers, HTTP API, ACL and login
  /** A Consul server address is neither `host:port` nor an http(s) URL; fix the address. */
  | 'consul-address-invalid'
  /** A Consul API call failed with an HTTP error status other than 401/403/404 (see `ConsulApiError.status`). */
  | 'consul-api-error'
  /** Consul answered with a body that is not the JSON expected; check the address points at a Consul server's HTTP API. */
  | 'consul-bad-response'
  /** The Consul CA certificate file cannot be read; check `consulServers.http.tls.caCertFile` (or `-ca-file`) and its permissions. */
  | 'consul-ca-unreadable'
  /** Consul refused the IAM login; the message names the likely cause (auth method, binding rule, role tags, server ID header). */
  | 'consul-login-refused'
  /** The login kept failing until its deadline; check that the Consul servers are reachable from the task. */
  | 'consul-login-timeout'
  /** Logging a token out failed; check the token and that Consul is reachable. */
  | 'consul-logout-failed'
  /** The Consul cluster has no leader yet; wait for it, or check the servers' health. */
  | 'consul-no-leader'
  /** A Consul API call answered HTTP 404 for the object asked for. */
  | 'consul-not-found'
  /** A Consul API call answered HTTP 401/403; give the token the permissions the call needs. */
  | 'consul-permission-denied'
  /**
   * `consulServers.hosts` `exec=discover … provider=aws` found no server: the AWS region, the
   * credentials or EC2 `DescribeInstances` failed, or no running instance has the tag; or go-discover's
   * `discover` for another provider is not on PATH.
   */
  | 'consul-servers-discover-failed'
  /** `consulServers.hosts` `exec=discover …` is not a go-discover command that prints addresses; write `exec=discover -q addrs provider=aws key=value ...`. */
  | 'consul-servers-discover-invalid'
  /** The `consulServers.hosts` exec= command failed; it must print the server IP addresses on stdout and exit 0. */
  | 'consul-servers-exec-failed'
  /** `consulServers.hosts` is empty; set a DNS name, an IP address or `exec=<command>`. */
  | 'consul-servers-hosts-empty'
  /** `consulServers.hosts` does not resolve, or resolves to no address; check its DNS records. */
  | 'consul-servers-lookup-failed'
  /** No Consul server address to use after resolving `consulServers.hosts`; check the name or command. */
  | 'consul-servers-missing'
  /** TLS to Consul failed (certificate not accepted); give the CA that signed the server's certificate, and the right server name. */
  | 'consul-tls-error'
  /** The new ACL token never became readable with stale consistency; check that the Consul server cluster is healthy. */
  | 'consul-token-not-replicated'
  /** Consul does not know the ACL token given (`CONSUL_HTTP_TOKEN`); check it is the cluster's bootstrap token. */
  | 'consul-token-unknown'
  /** A Consul server could not be connected to; check the address, the port and the network route. */
  | 'consul-unreachable'
  // ECS task metadata and the ECS API
  /** The ECS task listing left out the controller's own task, so nothing was removed; check the cluster and `ecs:ListTasks`. */
  | 'ecs-listing-incomplete'
  /** The ECS task metadata endpoint answered an HTTP error status; retry, or check the ECS agent. */
  | 'ecs-metadata-error'
  /** The ECS task metadata is not JSON or lacks `TaskARN`/`Containers`; check `ECS_CONTAINER_METADATA_URI_V4`. */
  | 'ecs-metadata-invalid'
  /** `ECS_CONTAINER_METADATA_URI_V4` is not set; run inside an ECS task (platform version 1.4.0+ or agent 1.39.0+). */
  | 'ecs-metadata-missing'
  /** The ECS task metadata endpoint could not be reached; check the task's network mode and the agent. */
  | 'ecs-metadata-unreachable'
  /** A task ARN is not `arn:aws:ecs:<region>:<account>:task/<cluster>/<taskId>`; pass a full task ARN. */
  | 'ecs-task-arn-invalid'
  /** A task has only one of the partition and namespace tags; tag it with both or neither. */
  | 'ecs-task-tags-invalid'
  // Envoy bootstrap
  /** The Envoy bootstrap input is incomplete or inconsistent (ports, addresses, TLS, token); fix the field named. */
  | 'envoy-bootstrap-invalid'
  /** A proxy's `Proxy.Config` key (from its Consul registration or proxy-defaults) has a value Envoy would refuse; fix the key named. */
  | 'envoy-bootstrap-proxy-config'
  // Files, health checks and transparent proxy
  /** A file could not be written; check that the directory exists and this user can write to it. */
  | 'file-write-failed'
  /** The task's health checks are not registered in Consul; run mesh-init for the task first, with the same `healthSyncContainers`. */
  | 'health-checks-missing'
  /**
   * An answer (Consul, AWS, the ECS agent) had a body larger than the call reads: 4 MiB, or 64 MiB
   * for Consul's lists of tokens and of a node's services; check that the address points at the
   * real service (not a proxy or a captive portal answering in its place).
   */
  | 'response-too-large'
  /** The token file is empty; point at the file the login wrote. */
  | 'token-file-empty'
  /** The token file cannot be read; check its path and permissions. */
  | 'token-file-unreadable'
  /** The transparent proxy chains already exist in this network namespace (mesh-init ran before in this task); start a new task. */
  | 'tproxy-already-applied'
  /** resolv.conf could not be rewritten for Consul DNS; check the path is writable (the rules stay applied). */
  | 'tproxy-dns-failed'
  /** A transparent proxy setting (port, UID, CIDR, DNS address) is invalid; fix the values listed. */
  | 'tproxy-invalid-config'
  /** iptables was not permitted; run mesh-init as root with the NET_ADMIN capability. */
  | 'tproxy-not-permitted'
  /** An iptables rule failed (see `TransparentProxyError.failedRule` and `.output`); the rules before it stay applied. */
  | 'tproxy-rule-failed'
  /** Transparent proxy is on, but the task is not an awsvpc task on EC2; set `transparentProxy.enabled` to false, or run on EC2 with network mode awsvpc. */
  | 'transparent-proxy-unsupported'
  // Entrypoints and the consul-ecs executable
  /** An entrypoint was given no command to run; pass the application's command after the entrypoint's flags. */
  | 'command-missing'
  /** An entrypoint could not start its command; check the path and that it is executable. */
  | 'command-start-failed'
  /** The abort reason when an entrypoint's command has exited (not a failure). */
  | 'entrypoint-done'
  /** The consul-ecs executable to copy into the bootstrap dir was not found; build it, or set `CONSUL_ECS_EXECUTABLE`. */
  | 'executable-missing'
  /** A duration flag is not a Go duration (e.g. `30s`, `1m30s`); fix its value. */
  | 'invalid-duration';

/**
 * Errors raised by this library. Every message says what failed, with which
 * input, and what to do about it. Messages never carry credentials, bearer
 * tokens or ACL tokens: callers pass only non-secret context in.
 */
export class ConsulEcsError extends Error {
  /** A stable, machine-readable reason, e.g. `consul-login-refused`. */
  readonly code: ConsulEcsErrorCode;

  constructor(code: ConsulEcsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConsulEcsError';
    this.code = code;
  }
}

/**
 * The message of any thrown value, for wrapping into a clearer error. Our own
 * errors already say everything; a foreign error gets its cause appended.
 */
export function describeError(err: unknown): string {
  if (err instanceof ConsulEcsError) return `${err.message} (${err.code})`;
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = (err as { code?: unknown }).code;
    let text = err.message;
    if (typeof code === 'string' && !text.includes(code)) text = `${text} (${code})`;
    if (cause instanceof Error && cause.message && !text.includes(cause.message)) {
      text = `${text}: ${describeError(cause)}`;
    }
    return text;
  }
  return String(err);
}

/**
 * What to check when a directory refused a write: that it exists and that this
 * process's user (by uid, as task definitions name users) may write to it.
 */
export function writableDirHint(dir: string): string {
  const user = typeof process.getuid === 'function' ? `uid ${process.getuid()}` : 'this user';
  return `check that ${dir} exists and that ${user} can write to it`;
}

/**
 * Why a long-running loop was stopped, for its log line: the abort reason's own
 * words (the CLI aborts with "received SIGTERM" or "received SIGINT"), else
 * "stop requested" (a plain `abort()`).
 */
export function stopReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (typeof reason === 'string' && reason) return reason;
  if (reason instanceof Error && reason.name !== 'AbortError' && reason.message) return reason.message;
  return 'stop requested';
}
