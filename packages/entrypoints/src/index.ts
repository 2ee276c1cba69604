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
