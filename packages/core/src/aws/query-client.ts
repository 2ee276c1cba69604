import type { XMLParser } from 'fast-xml-parser';
import type { Dispatcher } from 'undici';
import { ConsulEcsError } from '../util/errors.js';
import type { AwsCredentials } from './credentials.js';
import { postSignedRequest } from './signed-post.js';
import { formBody, signQueryRequest } from './sigv4.js';

export const STS_API_VERSION = '2011-06-15';
export const IAM_API_VERSION = '2010-05-08';

/** An error answer from an AWS Query API (`<ErrorResponse><Error><Code>…`). */
export class AwsApiError extends ConsulEcsError {
  readonly awsCode: string;
  readonly status: number;

  constructor(action: string, endpoint: string, status: number, awsCode: string, awsMessage: string) {
    super('aws-api-error', `AWS ${action} at ${endpoint} failed with HTTP ${status} ${awsCode}: ${awsMessage}`);
    this.awsCode = awsCode;
    this.status = status;
  }
}

let parser: XMLParser | undefined;

/** The XML parser, loaded on first use: a task that logs in with its role's ARN never calls an AWS API. */
async function xmlParser(): Promise<XMLParser> {
  if (!parser) {
    const { XMLParser } = await import('fast-xml-parser');
    parser = new XMLParser({
      ignoreAttributes: true,
      parseTagValue: false,
      isArray: (name) => name === 'member',
    });
  }
  return parser;
}

export interface QueryCallInput {
  endpoint: URL;
  region: string;
  service: 'sts' | 'iam';
  action: string;
  version: string;
  params?: Record<string, string>;
  credentials: AwsCredentials;
  dispatcher?: Dispatcher;
  signingDate?: Date;
  timeoutMs?: number;
}

/**
 * Calls an AWS Query API action (STS, IAM) with a signed POST and returns the
 * `<Action>Result` element parsed from the XML answer.
 */
export async function callQueryApi(input: QueryCallInput): Promise<Record<string, unknown>> {
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
    timeoutMs: input.timeoutMs,
  });
  const { text } = res;
  const xml = await xmlParser();
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
  const envelope = doc[`${input.action}Response`] as Record<string, unknown> | undefined;
  const result = envelope?.[`${input.action}Result`];
  if (envelope === undefined) {
    throw new ConsulEcsError('aws-bad-response', `AWS ${input.action} at ${where} returned an unexpected XML document`);
  }
  return (result ?? {}) as Record<string, unknown>;
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
