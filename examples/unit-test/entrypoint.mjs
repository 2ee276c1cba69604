// A team's own mesh-init entrypoint, built on @consul-ecs-ts/core: consul-ecs's
// mesh-init (log in with the task role, register the service and its sidecar,
// write the dataplane's files), with two touches of its own: the service carries
// the image's build in its meta, and the app container gets a file saying the
// task is in the mesh.
//
// Run in a task: node entrypoint.mjs (with CONSUL_ECS_CONFIG_JSON set, as for consul-ecs).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createLogger, loadConfig, meshInit, resolveServerAddresses } from '@consul-ecs-ts/core';

/**
 * @param {object} [opts]
 * @param {Record<string, string | undefined>} [opts.env] the container's environment
 * @param {import('@consul-ecs-ts/core').Logger} [opts.logger]
 * @param {AbortSignal} [opts.signal]
 */
export async function main({ env = process.env, logger = createLogger({ level: 'info' }), signal } = {}) {
  const loaded = await loadConfig({ env });
  const config = { ...loaded, service: { ...loaded.service, meta: { ...loaded.service.meta, build: env.BUILD_ID ?? 'dev' } } };
  const addresses = await resolveServerAddresses(config.consulServers.hosts, { signal });
  const result = await meshInit({ config, env, addresses, logger, signal });
  try {
    await writeFile(join(config.bootstrapDir, 'mesh-ready'), `${result.serviceName}\n`);
    logger.info('the task is in the mesh', { service: result.serviceName });
    return result;
  } finally {
    await result.client.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
