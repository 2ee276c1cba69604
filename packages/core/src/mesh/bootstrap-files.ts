/** Files mesh-init writes into the bootstrap dir, with their modes. */
export const BOOTSTRAP_FILES = {
  serviceToken: { name: 'service-token', mode: 0o600 },
  dataplaneConfig: { name: 'consul-dataplane.json', mode: 0o444 },
  grpcCaCert: { name: 'consul-grpc-ca-cert.pem', mode: 0o444 },
  /** Holds the ACL token: readable by mesh-init's user only (run Envoy as the same user). */
  envoyBootstrap: { name: 'envoy-bootstrap.json', mode: 0o600 },
  executable: { name: 'consul-ecs', mode: 0o755 },
} as const;
