/** Files mesh-init writes into the bootstrap dir, with their modes. */
export const BOOTSTRAP_FILES = {
  serviceToken: { name: 'service-token', mode: 0o600 },
  dataplaneConfig: { name: 'consul-dataplane.json', mode: 0o444 },
  grpcCaCert: { name: 'consul-grpc-ca-cert.pem', mode: 0o444 },
  /**
   * Holds the ACL token, and is read by Envoy, which runs as another user than
   * mesh-init (5995 against the image's 5996, or root with transparent proxy):
   * readable by every container of the task, as consul-dataplane.json is, whose
   * bearer token logs in as the same service. Each of them can get the task role's
   * credentials and log in as the service anyway.
   */
  envoyBootstrap: { name: 'envoy-bootstrap.json', mode: 0o444 },
  executable: { name: 'consul-ecs', mode: 0o755 },
  /**
   * The loader and the C and C++ libraries the executable runs with, beside its
   * copy, which looks for them there: it then runs in images without them.
   */
  executableLibraries: { name: '.consul-ecs-lib', mode: 0o755 },
} as const;
