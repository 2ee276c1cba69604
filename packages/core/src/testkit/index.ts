/**
 * Test helpers for code that runs in ECS tasks: an ECS agent simulator (task
 * metadata v4 and container credentials) and an AssumeRole credentials source.
 */
export * from './ecs-agent-simulator.js';
export * from './assume-role.js';
