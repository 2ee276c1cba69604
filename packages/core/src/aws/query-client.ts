import type { XMLParser } from 'fast-xml-parser';
import type { Dispatcher } from 'undici';
import { quoteBody } from '../http/request.js';
import { ConsulEcsError } from '../util/errors.js';
import type { AwsCredentials } from './credentials.js';
import { postSignedRequest } from './signed-post.js';
import { formBody, signQueryRequest } from './sigv4.js';

export const STS_API_VERSION = '2011-06-15';
export const IAM_API_VERSION = '2010-05-08';
export const EC2_API_VERSION = '2016-11-15';

/** An error answer from an AWS Query API (`<ErrorResponse><Error><Code>…`). */
export class AwsApiError extends ConsulEcsError {
  readonly awsCode: string;
  readonly status: number;

  constructor(action: string, endpoint: string, status: number, awsCode: string, awsMessage: string) {
    super('aws-api-error', `AWS ${action} at ${endpoint} failed with HTTP ${status} ${quoteBody(awsCode)}: ${quoteBody(awsMessage)}`);
    this.awsCode = awsCode;
    this.status = status;
  }
}

/** AWS error codes that say "slow down", answered with HTTP 400 by the Query APIs. */
const THROTTLING_CODES = new Set(['Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'RequestThrottled']);

/**
 * Whether an AWS call may succeed when sent again, as the AWS SDKs judge it: no
 * connection, HTTP 5xx or 429, or a throttling error code.
 */
export function isRetryableAwsError(err: unknown): boolean {
  if (err instanceof AwsApiError) return err.status >= 500 || err.status === 429 || THROTTLING_CODES.has(err.awsCode);
  return err instanceof ConsulEcsError && err.code === 'aws-unreachable';
}

const parsers = new Map<string, XMLParser>();

/**
 * The XML parser, loaded on first use: a task that logs in with its role's ARN
 * never calls an AWS API. Lists are `<member>` elements in STS and IAM answers,
 * `<item>` elements in EC2's.
 */
async function xmlParser(listElement: 'member' | 'item'): Promise<XMLParser> {
  let parser = parsers.get(listElement);
  if (!parser) {
    const { XMLParser } = await import('fast-xml-parser');
    parser = new XMLParser({
      ignoreAttributes: true,
      parseTagValue: false,
      isArray: (name) => name === listElement,
    });
    parsers.set(listElement, parser);
  }
  return parser;
}

export interface QueryCallInput {
  endpoint: URL;
  region: string;
  service: 'sts' | 'iam' | 'ec2';
  action: string;
  version: string;
  params?: Record<string, string>;
  credentials: AwsCredentials;
  dispatcher?: Dispatcher;
  signingDate?: Date;
  timeoutMs?: number;
  /** Stops the call; its abort is passed through as it is. */
  signal?: AbortSignal;
}

/**
 * Calls an AWS Query API action (STS, IAM) with a signed POST and returns the
 * `<Action>Result` element parsed from the XML answer.
 */
export async function callQueryApi(input: QueryCallInput): Promise<Record<string, unknown>> {
  const envelope = await callQueryApiDocument(input, 'member');
  return (envelope[`${input.action}Result`] ?? {}) as Record<string, unknown>;
}

/**
 * Calls an EC2 API action (EC2's dialect of the Query API) with a signed POST and
 * returns the `<ActionResponse>` element parsed from the XML answer: EC2 puts the
 * result's fields there directly, and every `<item>` list is an array.
 */
export async function callEc2Api(input: Omit<QueryCallInput, 'service' | 'version'> & { version?: string }): Promise<Record<string, unknown>> {
  return callQueryApiDocument({ ...input, service: 'ec2', version: input.version ?? EC2_API_VERSION }, 'item');
}

async function callQueryApiDocument(input: QueryCallInput, listElement: 'member' | 'item'): Promise<Record<string, unknown>> {
  const body = formBody({ Action: input.action, Version: input.version, ...input.params });
  const signed = await signQueryRequest({
    url: input.endpoint,
    body,
    region: input.region,
    service: input.service,
    credentials: input.credentials,
    signingDate: input.signingDate,
  });
  const where = input.endpoint.origin;
  const res = await postSignedRequest(signed, {
    service: input.service,
    operation: input.action,
    dispatcher: input.dispatcher,
    signal: input.signal,
    timeoutMs: input.timeoutMs,
  });
  const { text } = res;
  const xml = await xmlParser(listElement);
  let doc: Record<string, unknown>;
  try {
    doc = xml.parse(text) as Record<string, unknown>;
  } catch {
    throw new ConsulEcsError('aws-bad-response', `AWS ${input.action} at ${where} returned HTTP ${res.statusCode} with a body that is not XML`);
  }
  if (res.statusCode !== 200) {
    const error = findError(doc);
    throw new AwsApiError(input.action, where, res.statusCode, error.code, error.message);
  }
  const envelope = doc[`${input.action}Response`];
  if (envelope === undefined) {
    throw new ConsulEcsError('aws-bad-response', `AWS ${input.action} at ${where} returned an unexpected XML document`);
  }
  return (typeof envelope === 'object' && envelope !== null ? envelope : {}) as Record<string, unknown>;
}

function findError(doc: Record<string, unknown>): { code: string; message: string } {
  const root = (doc.ErrorResponse ?? doc.Response ?? doc) as Record<string, unknown>;
  const errors = root.Errors as Record<string, unknown> | undefined;
  const error = (root.Error ?? errors?.Error ?? {}) as Record<string, unknown>;
  return {
    code: String(error.Code ?? 'UnknownError'),
    message: String(error.Message ?? 'no message'),
  };
}

export interface CallerIdentity {
  arn: string;
  account: string;
  userId: string;
}

export async function getCallerIdentity(input: Omit<QueryCallInput, 'action' | 'version' | 'service' | 'params'>): Promise<CallerIdentity> {
  const r = await callQueryApi({ ...input, service: 'sts', action: 'GetCallerIdentity', version: STS_API_VERSION });
  return { arn: String(r.Arn ?? ''), account: String(r.Account ?? ''), userId: String(r.UserId ?? '') };
}
