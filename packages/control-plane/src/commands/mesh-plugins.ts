// Envoy bootstrap generation and transparent proxy application, as mesh-init uses them.
import type { EnvoyBootstrapRequest, Logger, MeshInitOptions } from '@consul-ecs-ts/core';

export function envoyBootstrapFor(req: EnvoyBootstrapRequest): unknown {
  void req;
  return undefined;
}

export function transparentProxyApplier(logger: Logger): NonNullable<MeshInitOptions['applyTransparentProxy']> {
  void logger;
  return async () => {
    throw new Error('not wired yet');
  };
}
