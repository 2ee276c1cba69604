import { systemClock } from '../util/clock.js';
import { ConsulEcsError } from '../util/errors.js';
import { parsePrincipalArn } from './arn.js';
import type { AwsCredentials, CredentialProvider } from './credentials.js';
import { getCallerIdentity, IAM_API_VERSION, STS_API_VERSION } from './query-client.js';
import { formBody, signQueryRequest, type SignedRequest } from './sigv4.js';
import type { IoOptions } from '../util/options.js';

/** Header names the Consul AWS IAM auth method reads (consul `agent/consul/authmethod/awsauth`). */
export const CONSUL_IAM_HEADERS = {
  serverId: 'X-Consul-IAM-ServerID',
  getEntityMethod: 'X-Consul-IAM-GetEntity-Method',
  getEntityUrl: 'X-Consul-IAM-GetEntity-URL',
  getEntityHeaders: 'X-Consul-IAM-GetEntity-Headers',
  getEntityBody: 'X-Consul-IAM-GetEntity-Body',
} as const;

/** The login bearer token for the `aws-iam` auth method, before JSON encoding. */
export interface AwsIamBearerToken {
  iam_http_request_method: 'POST';
  /** base64 of the STS URL. */
  iam_request_url: string;
  /** base64 of the headers as a JSON object of arrays. */
  iam_request_headers: string;
  /** base64 of `Action=GetCallerIdentity&Version=2011-06-15`. */
  iam_request_body: string;
}

export interface BearerTokenOptions extends Pick<IoOptions, 'dispatcher' | 'clock'> {
  credentials: CredentialProvider | AwsCredentials;
  /** STS region (`consulLogin.region`, else the task's region). */
  region: string;
  /** Custom STS endpoint URL (`consulLogin.stsEndpoint`). */
  stsEndpoint?: string;
  /** Custom IAM endpoint URL (`consulLogin.iamEndpoint`). */
  iamEndpoint?: string;
  /** Embed a signed `iam:GetRole`/`iam:GetUser` request (needs one real STS call first). */
  includeEntity?: boolean;
  /** Value for `X-Consul-IAM-ServerID`, signed into both requests when set. */
  serverIdHeaderValue?: string;
}

/** The default regional STS endpoint for a region, as the AWS SDKs resolve it. */
export function defaultStsEndpoint(region: string): URL {
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return new URL(`https://sts.${region}.${suffix}/`);
}

/** The global IAM endpoint for a region's partition and the region IAM requests are signed for. */
export function defaultIamEndpoint(region: string): { url: URL; signingRegion: string } {
  if (region.startsWith('cn-')) return { url: new URL('https://iam.cn-north-1.amazonaws.com.cn/'), signingRegion: 'cn-north-1' };
  if (region.startsWith('us-gov-')) return { url: new URL('https://iam.us-gov.amazonaws.com/'), signingRegion: 'us-gov-west-1' };
  return { url: new URL('https://iam.amazonaws.com/'), signingRegion: 'us-east-1' };
}

function endpointUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConsulEcsError('aws-endpoint-invalid', `${what} "${value}" is not a URL; use e.g. https://host[:port]`);
  }
  if (url.search) {
    throw new ConsulEcsError('aws-endpoint-invalid', `${what} "${value}" must not have a query string`);
  }
  return url;
}

/**
 * Builds the bearer token for `POST /v1/acl/login` with an `aws-iam` auth method:
 * a SigV4-signed `sts:GetCallerIdentity` request that Consul replays to AWS.
 * With `includeEntity`, a signed `iam:GetRole` (roles) or `iam:GetUser` (users)
 * request rides in four headers; the principal is the one the credentials name
 * (the ECS agent gives the task role's ARN), else it is learned from STS first.
 */
export async function createLoginBearerToken(opts: BearerTokenOptions): Promise<string> {
  if (!opts.region) {
    throw new ConsulEcsError('aws-region-missing', 'an AWS region is needed to sign the login request; set consulLogin.region or AWS_REGION');
  }
  const credentials = typeof opts.credentials === 'function' ? await opts.credentials() : opts.credentials;
  const clock = opts.clock ?? systemClock;
  const signingDate = new Date(clock.now());
  const stsUrl = opts.stsEndpoint ? endpointUrl(opts.stsEndpoint, 'STS endpoint') : defaultStsEndpoint(opts.region);
  const serverIdHeaders: Record<string, string> = opts.serverIdHeaderValue ? { [CONSUL_IAM_HEADERS.serverId]: opts.serverIdHeaderValue } : {};

  const stsHeaders: Record<string, string> = { ...serverIdHeaders };
  if (opts.includeEntity) {
    const entity = await signedEntityRequest(opts, credentials, stsUrl, serverIdHeaders, signingDate);
    stsHeaders[CONSUL_IAM_HEADERS.getEntityMethod] = entity.method;
    stsHeaders[CONSUL_IAM_HEADERS.getEntityUrl] = entity.url;
    stsHeaders[CONSUL_IAM_HEADERS.getEntityHeaders] = JSON.stringify(headersAsArrays(entity.headers));
    stsHeaders[CONSUL_IAM_HEADERS.getEntityBody] = entity.body;
  }

  const sts = await signQueryRequest({
    url: stsUrl,
    body: formBody({ Action: 'GetCallerIdentity', Version: STS_API_VERSION }),
    region: opts.region,
    service: 'sts',
    credentials,
    headers: stsHeaders,
    signingDate,
  });

  const token: AwsIamBearerToken = {
    iam_http_request_method: 'POST',
    iam_request_url: b64(sts.url),
    iam_request_headers: b64(JSON.stringify(headersAsArrays(sts.headers))),
    iam_request_body: b64(sts.body),
  };
  return JSON.stringify(token);
}

async function signedEntityRequest(
  opts: BearerTokenOptions,
  credentials: AwsCredentials,
  stsUrl: URL,
  serverIdHeaders: Record<string, string>,
  signingDate: Date,
): Promise<SignedRequest> {
  const arn =
    credentials.principalArn ?? (await getCallerIdentity({ endpoint: stsUrl, region: opts.region, credentials, dispatcher: opts.dispatcher, signingDate })).arn;
  const principal = parsePrincipalArn(arn);
  const iam = opts.iamEndpoint ? { url: endpointUrl(opts.iamEndpoint, 'IAM endpoint'), signingRegion: opts.region } : defaultIamEndpoint(opts.region);
  const params: Record<string, string> =
    principal.type === 'user'
      ? { Action: 'GetUser', UserName: principal.name, Version: IAM_API_VERSION }
      : { Action: 'GetRole', RoleName: principal.name, Version: IAM_API_VERSION };
  return signQueryRequest({
    url: iam.url,
    body: formBody(params),
    region: iam.signingRegion,
    service: 'iam',
    credentials,
    headers: serverIdHeaders,
    signingDate,
  });
}

function headersAsArrays(headers: Record<string, string>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]]));
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

/** Standard base64 with padding, as `iam_request_*` are encoded (Go's `base64.StdEncoding`). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes a bearer token made by {@link createLoginBearerToken}, for inspection and tests.
 * A token that is not one (not a JSON object, a field missing or not a string, a field
 * not standard base64, headers not a JSON object of string arrays) is a
 * `consul-login-refused` error naming the field; the method is returned as given
 * (refusing one other than POST is the server's call).
 */
export function decodeLoginBearerToken(token: string): {
  method: string;
  url: string;
  headers: Record<string, string[]>;
  body: string;
} {
  // The messages name fields, never their values: the token carries signed credentials.
  const invalid = (what: string) => new ConsulEcsError('consul-login-refused', `the aws-iam login bearer token is not valid: ${what}`);
  let t: unknown;
  try {
    t = JSON.parse(token);
  } catch {
    throw invalid('it is not JSON');
  }
  if (typeof t !== 'object' || t === null || Array.isArray(t)) throw invalid('it is not a JSON object');
  const field = (name: keyof AwsIamBearerToken): string => {
    const value = (t as Record<string, unknown>)[name];
    if (typeof value !== 'string') throw invalid(`${name} is ${value === undefined ? 'missing' : 'not a string'}`);
    return value;
  };
  const dec = (name: keyof AwsIamBearerToken): string => {
    const value = field(name);
    if (!BASE64.test(value)) throw invalid(`${name} is not standard base64`);
    return Buffer.from(value, 'base64').toString('utf8');
  };
  const method = field('iam_http_request_method');
  const url = dec('iam_request_url');
  const headersJson = dec('iam_request_headers');
  let headers: unknown;
  try {
    headers = JSON.parse(headersJson);
  } catch {
    throw invalid('iam_request_headers is not JSON');
  }
  if (
    typeof headers !== 'object' ||
    headers === null ||
    Array.isArray(headers) ||
    !Object.values(headers).every((v) => Array.isArray(v) && v.every((s) => typeof s === 'string'))
  ) {
    throw invalid('iam_request_headers is not a JSON object of string arrays');
  }
  return { method, url, headers: headers as Record<string, string[]>, body: dec('iam_request_body') };
}
