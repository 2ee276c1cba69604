export * from './types.js';
export * from './registration.js';
export * from './client.js';
