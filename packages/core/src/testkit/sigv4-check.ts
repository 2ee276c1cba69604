import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The parts of a SigV4 `Authorization` header. */
export interface SigV4Authorization {
  accessKeyId: string;
  /** `YYYYMMDD` of the credential scope. */
  date: string;
  region: string;
  service: string;
  /** Lower-case header names, in the order signed. */
  signedHeaders: string[];
  signature: string;
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/;

/** Parses a SigV4 `Authorization` header; undefined when it is not one. */
export function parseSigV4Authorization(header: string | undefined): SigV4Authorization | undefined {
  const m = AUTHORIZATION.exec(header ?? '');
  if (!m) return undefined;
  return { accessKeyId: m[1]!, date: m[2]!, region: m[3]!, service: m[4]!, signedHeaders: m[5]!.split(';'), signature: m[6]! };
}

/** `YYYYMMDDTHHMMSSZ` as a time in milliseconds; NaN when it is not one. */
export function parseAmzDate(value: string | undefined): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : Number.NaN;
}

export interface SignedRequestParts {
  method: string;
  /** The path and query as sent. */
  url: string;
  /** Header values by lower-case name. */
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * The signature SigV4 gives a request with a secret key, computed here from the
 * specification (canonical request, string to sign, derived key), independent of
 * the signer that made it.
 */
export function sigV4Signature(req: SignedRequestParts, auth: SigV4Authorization, secretAccessKey: string): string {
  const [rawPath = '/', rawQuery = ''] = req.url.split('?', 2);
  const query = rawQuery
    .split('&')
    .filter(Boolean)
    .map((pair) => pair.split('=', 2).map((s) => uriEncode(decodeURIComponent(s.replace(/\+/g, ' ')))))
    .map(([k = '', v = '']) => `${k}=${v}`)
    .sort()
    .join('&');
  const headerValue = (name: string) => {
    const v = req.headers[name];
    return (Array.isArray(v) ? v.join(',') : (v ?? '')).trim().replace(/\s+/g, ' ');
  };
  const canonical = [
    req.method,
    rawPath
      .split('/')
      .map((s) => uriEncode(decodeURIComponent(s)))
      .join('/'),
    query,
    auth.signedHeaders.map((h) => `${h}:${headerValue(h)}\n`).join(''),
    auth.signedHeaders.join(';'),
    sha256(req.body),
  ].join('\n');
  const amzDate = headerValue('x-amz-date');
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key: Buffer = hmac(`AWS4${secretAccessKey}`, auth.date);
  for (const part of [auth.region, auth.service, 'aws4_request']) key = hmac(key, part);
  return hmac(key, toSign).toString('hex');
}

/** Whether two hex signatures are equal (in constant time). */
export function sameSignature(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

function sha256(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** RFC 3986 encoding as SigV4 wants it: everything but unreserved characters. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
