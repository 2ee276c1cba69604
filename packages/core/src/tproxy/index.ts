export * from './iptables.js';
export * from './dns.js';
export * from './apply.js';
export * from './supported.js';
export * from './own-traffic.js';
