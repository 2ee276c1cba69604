import { ConsulEcsError } from '../util/errors.js';
import { parseConfigJson } from './json.js';
import type { ResolvedConfig } from './types.js';
import { CONFIG_ENV_VAR, validateConfig } from './validate.js';

export interface LoadConfigOptions {
  env: Record<string, string | undefined>;
}

/** Reads, parses and validates `CONSUL_ECS_CONFIG_JSON`, and applies the defaults. */
export async function loadConfig({ env }: LoadConfigOptions): Promise<ResolvedConfig> {
  const text = env[CONFIG_ENV_VAR];
  if (!text?.trim()) {
    throw new ConsulEcsError(
      'config-missing',
      `${CONFIG_ENV_VAR} is ${text === undefined ? 'not set' : 'empty'}: set it to the consul-ecs configuration as JSON, at least ` +
        `{"bootstrapDir":"/consul","consulServers":{"hosts":"consul.example.com"}} (hosts: a DNS name, an IP address or exec=<command>)`,
    );
  }
  return validateConfig(parseConfigJson(text, CONFIG_ENV_VAR), CONFIG_ENV_VAR);
}
