/**
 * Test helpers for code that runs in ECS tasks: an ECS agent simulator (task
 * metadata v4 and container credentials), an AssumeRole credentials source, and
 * stand-ins for Consul and for AWS STS/IAM that answer with answers recorded from
 * the real servers, so a unit test can run a task's whole login, registration and
 * health sync on loopback.
 */
export * from './ecs-agent-simulator.js';
export * from './assume-role.js';
export * from './consul-stand-in.js';
export * from './aws-iam-stand-in.js';
export {
  RECORDED_FROM,
  recordedConsulAnswer,
  recordedConsulAnswerNames,
  recordedAwsAnswer,
  type RecordedConsulAnswer,
  type RecordedConsulAnswerName,
  type RecordedAwsAnswer,
  type RecordedAwsAnswerName,
} from './recorded.js';
