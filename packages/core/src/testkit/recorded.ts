// The answers the stand-ins serve, recorded once from the real servers by
// scripts/fixtures/record-testkit-fixtures.ts (fixtures/*.json, bundled into the
// build: nothing is read from disk at run time).
import consulFixture from './fixtures/consul.json' with { type: 'json' };
import awsFixture from './fixtures/aws-iam.json' with { type: 'json' };

/** One recorded answer of Consul's HTTP API. */
export interface RecordedConsulAnswer {
  /** The call, e.g. `POST /v1/acl/login`. */
  readonly request: string;
  readonly status: number;
  /** Its headers, less those of the transport (date, length, encoding). */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The JSON answer, or the text of a refusal, where the values of the recording
   * run (an accessor ID, a node, a service…) stand as `{placeholders}`.
   */
  readonly body: unknown;
}

/** One recorded answer of AWS (STS or IAM, as moto answers them). */
export interface RecordedAwsAnswer {
  readonly status: number;
  readonly contentType: string;
  /** The XML, as recorded. */
  readonly body: string;
  /** The text of the elements that carry the recording run's own values, by element name. */
  readonly values: Readonly<Record<string, string>>;
}

/** The recorded Consul answers: the calls of scripts/fixtures/consul-scenario.ts, by name. */
export type RecordedConsulAnswerName =
  | 'leader'
  | 'login'
  | 'loginWithoutMeta'
  | 'loginUnknownMethod'
  | 'loginInvalidToken'
  | 'loginNotPost'
  | 'loginUntrusted'
  | 'loginUntagged'
  | 'loginServerIdMismatch'
  | 'tokenSelf'
  | 'tokenSelfUnknown'
  | 'tokenSelfAnonymous'
  | 'tokenSelfManagement'
  | 'registerNodeDenied'
  | 'registerNode'
  | 'register'
  | 'registerProxy'
  | 'registerServiceDenied'
  | 'registerAnonymousDenied'
  | 'registerUnknownToken'
  | 'nodeServicesProxy'
  | 'nodeServices'
  | 'nodeServicesAnonymous'
  | 'nodeServicesUnknownToken'
  | 'nodeServicesUnknownNode'
  | 'healthChecks'
  | 'healthChecksProxy'
  | 'healthChecksAnonymous'
  | 'healthChecksUnknownToken'
  | 'checksUpdate'
  | 'healthChecksUpdated'
  | 'registerMinimal'
  | 'registerMinimalProxy'
  | 'nodeServicesMinimal'
  | 'healthChecksMinimal'
  | 'deregisterAnonymousDenied'
  | 'deregisterProxy'
  | 'deregister'
  | 'deregisterUnknown'
  | 'logout'
  | 'logoutUnknown'
  | 'logoutAnonymous'
  | 'logoutManagement'
  | 'tokenSelfAfterLogout'
  | 'logoutOther';

/** The recorded AWS answers, by name. */
export type RecordedAwsAnswerName = 'getCallerIdentity' | 'getRole' | 'signatureDoesNotMatch' | 'invalidClientTokenId';

// The fixtures hold every name above (a re-recording that drops one fails the type check).
const consulAnswers: Record<RecordedConsulAnswerName, RecordedConsulAnswer> = consulFixture.answers;
const awsAnswers: Record<RecordedAwsAnswerName, RecordedAwsAnswer> = awsFixture.answers;

/** What the recordings were made from (e.g. `Consul v1.22.7, ACLs on…`). */
export const RECORDED_FROM: { readonly consul: string; readonly aws: string } = { consul: consulFixture.recordedFrom, aws: awsFixture.recordedFrom };

/** A recorded Consul answer, by name (a copy: change it freely). */
export function recordedConsulAnswer(name: RecordedConsulAnswerName): RecordedConsulAnswer {
  const answer = consulAnswers[name] as RecordedConsulAnswer | undefined;
  if (!answer) throw new Error(`no recorded Consul answer named ${String(name)}`);
  return structuredClone(answer);
}

/** A recorded AWS answer, by name (a copy). */
export function recordedAwsAnswer(name: RecordedAwsAnswerName): RecordedAwsAnswer {
  const answer = awsAnswers[name] as RecordedAwsAnswer | undefined;
  if (!answer) throw new Error(`no recorded AWS answer named ${String(name)}`);
  return structuredClone(answer);
}

/** The names of the recorded Consul answers. */
export function recordedConsulAnswerNames(): RecordedConsulAnswerName[] {
  return Object.keys(consulAnswers) as RecordedConsulAnswerName[];
}

/** Puts values in a text's `{placeholders}`; one left without a value is an error. */
export function fillPlaceholders(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`no value for ${whole} in "${template}"`);
    return value;
  });
}

/** Escapes text for an XML element. */
export function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/**
 * A recorded XML answer with the text of some of its elements replaced: each
 * element named must be in it exactly once.
 */
export function replaceElements(xml: string, values: Record<string, string>): string {
  let out = xml;
  for (const [name, value] of Object.entries(values)) {
    const pattern = new RegExp(`<${name}>[^<]*</${name}>`, 'g');
    const count = out.match(pattern)?.length ?? 0;
    if (count !== 1) throw new Error(`the recorded answer has ${count} <${name}> elements, not one`);
    out = out.replace(pattern, `<${name}>${xmlEscape(value)}</${name}>`);
  }
  return out;
}
