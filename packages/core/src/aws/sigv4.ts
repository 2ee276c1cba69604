import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentials } from './credentials.js';

/** A signed AWS API request (POST). */
export interface SignedRequest {
  method: 'POST';
  url: string;
  /** Header names in Go's canonical MIME form (`X-Amz-Date`), as Consul expects them. */
  headers: Record<string, string>;
  body: string;
}

export interface SignRequestInput {
  url: URL;
  body: string;
  region: string;
  /** The signing name of the service: `sts`, `iam`, `ecs`. */
  service: string;
  credentials: AwsCredentials;
  /** Extra headers to sign with the request, e.g. `X-Consul-IAM-ServerID` or `X-Amz-Target`. */
  headers?: Record<string, string>;
  signingDate?: Date;
}

export const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded; charset=utf-8';
/** The content type of AWS JSON 1.1 APIs (ECS). */
export const JSON_11_CONTENT_TYPE = 'application/x-amz-json-1.1';

/**
 * Signs a POST of a form-encoded AWS Query API body (STS, IAM) to `url` with AWS
 * Signature Version 4. The payload hash is not sent as a header (as the Go SDK does
 * for STS and IAM), and `Host` is signed but not returned: HTTP clients derive it
 * from the URL.
 */
export function signQueryRequest(input: SignRequestInput): Promise<SignedRequest> {
  return signPost(input, FORM_CONTENT_TYPE);
}

/** Signs a POST of an AWS JSON 1.1 body (ECS), with its `X-Amz-Target` in `headers`. */
export function signJsonRequest(input: SignRequestInput): Promise<SignedRequest> {
  return signPost(input, JSON_11_CONTENT_TYPE);
}

async function signPost(input: SignRequestInput, contentType: string): Promise<SignedRequest> {
  const { url } = input;
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: input.credentials.accessKeyId,
      secretAccessKey: input.credentials.secretAccessKey,
      ...(input.credentials.sessionToken ? { sessionToken: input.credentials.sessionToken } : {}),
    },
    region: input.region,
    service: input.service,
    sha256: Sha256,
    applyChecksum: false,
  });
  const headers: Record<string, string> = {
    host: url.host,
    'content-type': contentType,
  };
  for (const [k, v] of Object.entries(input.headers ?? {})) headers[k.toLowerCase()] = v;

  const signed = await signer.sign(
    {
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query: {},
      headers,
      body: input.body,
    },
    { signingDate: input.signingDate ?? new Date() },
  );

  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) {
    if (k.toLowerCase() === 'host') continue;
    out[canonicalHeaderKey(k)] = v;
  }
  return { method: 'POST', url: url.toString(), headers: out, body: input.body };
}

/** Go's `textproto.CanonicalMIMEHeaderKey`: `x-consul-iam-serverid` → `X-Consul-Iam-Serverid`. */
export function canonicalHeaderKey(key: string): string {
  if (!/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(key)) return key;
  return key
    .toLowerCase()
    .split('-')
    .map((w) => (w ? w[0]!.toUpperCase() + w.slice(1) : w))
    .join('-');
}

/** `application/x-www-form-urlencoded` body, keys sorted as the AWS SDKs' Query serializers send them. */
export function formBody(params: Record<string, string>): string {
  return Object.entries(params)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${awsUriEncode(k)}=${awsUriEncode(v)}`)
    .join('&');
}

function awsUriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
