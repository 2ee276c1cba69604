import type { Dispatcher } from 'undici';
import { ConsulEcsError } from '../util/errors.js';
import type { AwsCredentials } from './credentials.js';
import { AwsApiError } from './query-client.js';
import { postSignedRequest } from './signed-post.js';
import { signJsonRequest } from './sigv4.js';

export interface JsonCallInput {
  endpoint: URL;
  region: string;
  /** Signing name, e.g. `ecs`. */
  service: string;
  /** `X-Amz-Target`: `<ServicePrefix>.<Operation>`, e.g. `AmazonEC2ContainerServiceV20141113.ListTasks`. */
  target: string;
  body: Record<string, unknown>;
  credentials: AwsCredentials;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  signingDate?: Date;
  timeoutMs?: number;
}

/**
 * Calls an AWS JSON 1.1 API operation (ECS) with a signed POST and returns the
 * parsed JSON answer. Errors name the operation, the endpoint and AWS's error
 * code and message; they never contain the credentials or the signature.
 */
export async function callJsonApi<T = Record<string, unknown>>(input: JsonCallInput): Promise<T> {
  const operation = input.target.slice(input.target.lastIndexOf('.') + 1);
  const signed = await signJsonRequest({
    url: input.endpoint,
    body: JSON.stringify(input.body),
    region: input.region,
    service: input.service,
    credentials: input.credentials,
    headers: { 'X-Amz-Target': input.target },
    signingDate: input.signingDate,
  });
  const where = input.endpoint.origin;
  const res = await postSignedRequest(signed, {
    service: input.service,
    operation,
    dispatcher: input.dispatcher,
    signal: input.signal,
    timeoutMs: input.timeoutMs,
  });
  const { text } = res;
  if (res.statusCode !== 200) {
    const error = jsonApiError(text, res.headers['x-amzn-errortype']);
    throw new AwsApiError(operation, where, res.statusCode, error.code, error.message);
  }
  try {
    return (text ? JSON.parse(text) : {}) as T;
  } catch {
    throw new ConsulEcsError('aws-bad-response', `AWS ${operation} at ${where} returned HTTP 200 with a body that is not JSON`);
  }
}

/**
 * The code and message of an AWS JSON error answer: `__type` (possibly
 * `namespace#Code`) or the `X-Amzn-ErrorType` header (`Code:uri`), and
 * `message`/`Message`. An XML error document (some front ends answer
 * authorization failures in XML) is read too.
 */
export function jsonApiError(text: string, errorTypeHeader?: string | string[]): { code: string; message: string } {
  let code: string;
  let message: string;
  try {
    const doc = JSON.parse(text) as Record<string, unknown>;
    code = String(doc.__type ?? doc.code ?? '');
    message = String(doc.message ?? doc.Message ?? '');
  } catch {
    code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? '';
    message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? '';
  }
  const header = Array.isArray(errorTypeHeader) ? errorTypeHeader[0] : errorTypeHeader;
  if (!code && header) code = header.split(':')[0]!;
  code = code.slice(code.lastIndexOf('#') + 1);
  return { code: code || 'UnknownError', message: message || 'no message' };
}
