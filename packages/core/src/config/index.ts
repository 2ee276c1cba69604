export type * from './types.js';
export {
  CONFIG_DEFAULTS,
  consulDnsEnabled,
  gatewayName,
  isGateway,
  resolveConfig,
  serviceName,
  transparentProxyEnabled,
} from './resolve.js';
export { findJsonSyntaxError, parseConfigJson, type JsonSyntaxError } from './json.js';
export { CONFIG_ENV_VAR, ConfigValidationError, validateConfig } from './validate.js';
export { loadConfig, type LoadConfigOptions } from './load.js';
export {
  resolveServerAddresses,
  type ServerAddressCommandResult,
  type ServerAddressCommandRunner,
  type ServerAddressLookup,
  type ResolveServerAddressesOptions,
} from './server-addresses.js';
