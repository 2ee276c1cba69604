export * from './acl-setup.js';
export * from './task-reaper.js';
export * from './controller.js';
