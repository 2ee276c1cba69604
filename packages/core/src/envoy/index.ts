// Envoy bootstrap generation: Envoy talks ADS straight to the Consul servers.
export * from './types.js';
export * from './bootstrap.js';
export { consulResourceTagSpecifiers } from './stats-tags.js';
