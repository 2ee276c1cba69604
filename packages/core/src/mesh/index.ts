export * from './bootstrap-files.js';
export * from './consul-connection.js';
export * from './mesh-init.js';
export * from './health-sync.js';
export * from './task-login.js';
