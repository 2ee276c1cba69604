export * from './net-dial.js';
export {
  execaSpawner,
  exitCodeOf,
  FORWARDED_SIGNALS,
  processSignals,
  supervise,
  type ChildExit,
  type EntrypointDeps,
  type RunningChild,
  type SignalSource,
  type Spawner,
  type SpawnOptions,
  type Supervised,
} from './entrypoint.js';
export * from './envoy-entrypoint.js';
export * from './app-entrypoint.js';
export { CONSUL_DATAPLANE_NAME, ENVOY_BOOTSTRAP_FILE, envoyInPlaceOfConsulDataplane, type DataplaneStandInOptions } from './consul-dataplane-stand-in.js';
