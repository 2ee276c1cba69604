import { TaskMetadataClient, taskInfo } from '../ecs/task-metadata.js';
import { ConsulEcsError } from '../util/errors.js';
import type { Env, IoOptions } from '../util/options.js';
import { defaultCredentialProvider, fromStaticCredentials, type CredentialProvider } from './credentials.js';
import { callEc2Api } from './query-client.js';

/** Which address of each instance go-discover's `provider=aws` prints (`addr_type`); anything else is `private_v4`. */
export type AwsDiscoverAddressType = 'private_v4' | 'public_v4' | 'public_v6';

/** How {@link discoverAwsAddresses} reaches AWS; whatever is left out takes the default. */
export interface DiscoverAwsOptions extends Pick<IoOptions, 'dispatcher' | 'clock' | 'signal'> {
  /**
   * Where the region (`AWS_REGION`, `AWS_DEFAULT_REGION`, the task metadata at
   * `ECS_CONTAINER_METADATA_URI_V4`), the endpoint (`AWS_ENDPOINT_URL_EC2`,
   * `AWS_ENDPOINT_URL`) and the default credentials come from. Default `process.env`.
   */
  env?: Env;
  /**
   * The credentials to use when the configuration gives no `access_key_id` and
   * `secret_access_key`. Default: the task role's (the ECS container credentials),
   * else the environment's keys.
   */
  credentials?: CredentialProvider;
  /**
   * `MaxResults` of each `DescribeInstances` call (EC2 takes 5 to 1000). Default:
   * none, as go-discover asks; the pages EC2 still makes are followed either way.
   */
  pageSize?: number;
}

/**
 * What go-discover's `discover addrs provider=aws …` prints, found with EC2
 * `DescribeInstances` through this library's own signed client: an address of
 * each running instance with the tag `tag_key`=`tag_value`, in the order EC2
 * lists them, every page. The configuration keys are go-discover's:
 * - `region`: else `AWS_REGION`, `AWS_DEFAULT_REGION`, then the task's region
 *   from the ECS task metadata;
 * - `tag_key`, `tag_value`: the tag to look for (`tag_key` is required);
 * - `addr_type`: `private_v4` (the default, and what any other value means),
 *   `public_v4` or `public_v6` (every IPv6 address of the instance's network interfaces);
 * - `access_key_id`, `secret_access_key` (both, or the default credentials are
 *   used) and `session_token`;
 * - `endpoint`: the EC2 endpoint URL, else `AWS_ENDPOINT_URL_EC2`, then
 *   `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), else
 *   the regional endpoint.
 *
 * `service=ecs` (tasks rather than instances) is not done here. An instance
 * without an address of the type asked is skipped; no instance gives an empty list.
 */
export async function discoverAwsAddresses(config: Readonly<Record<string, string>>, opts: DiscoverAwsOptions = {}): Promise<string[]> {
  if (config.provider !== 'aws') {
    throw new ConsulEcsError('consul-servers-discover-invalid', `discoverAwsAddresses takes provider=aws, not provider=${config.provider ?? ''}`);
  }
  if (config.service === 'ecs') {
    throw new ConsulEcsError(
      'consul-servers-discover-invalid',
      'provider=aws service=ecs (ECS tasks rather than EC2 instances) is not resolved natively; use the EC2 service or go-discover',
    );
  }
  const tagKey = config.tag_key ?? '';
  if (!tagKey) {
    throw new ConsulEcsError(
      'consul-servers-discover-invalid',
      'provider=aws needs tag_key (and tag_value): the tag of the Consul servers EC2 instances, e.g. tag_key=consul tag_value=server',
    );
  }
  const env = opts.env ?? process.env;
  const addrType = awsAddressType(config.addr_type);
  const region = config.region || (await defaultRegion(env, opts));
  const endpoint = ec2Endpoint(config.endpoint, env, region);
  const credentials =
    config.access_key_id && config.secret_access_key
      ? fromStaticCredentials({
          accessKeyId: config.access_key_id,
          secretAccessKey: config.secret_access_key,
          ...(config.session_token ? { sessionToken: config.session_token } : {}),
        })
      : (opts.credentials ?? defaultCredentialProvider({ env, dispatcher: opts.dispatcher, clock: opts.clock }));

  const addresses: string[] = [];
  const seenTokens = new Set<string>();
  let nextToken: string | undefined;
  do {
    const params: Record<string, string> = {
      'Filter.1.Name': `tag:${tagKey}`,
      'Filter.1.Value.1': config.tag_value ?? '',
      'Filter.2.Name': 'instance-state-name',
      'Filter.2.Value.1': 'running',
    };
    if (opts.pageSize !== undefined) params.MaxResults = String(opts.pageSize);
    if (nextToken) params.NextToken = nextToken;
    const page = await callEc2Api({
      endpoint,
      region,
      action: 'DescribeInstances',
      params,
      credentials: await credentials(),
      dispatcher: opts.dispatcher,
      signal: opts.signal,
      ...(opts.clock ? { signingDate: new Date(opts.clock.now()) } : {}),
    });
    for (const instance of pageInstances(page)) addresses.push(...instanceAddresses(instance, addrType));
    nextToken = text(page.nextToken) || undefined;
    if (nextToken && seenTokens.has(nextToken)) {
      throw new ConsulEcsError('aws-bad-response', `EC2 DescribeInstances at ${endpoint.origin} gave the same NextToken twice`);
    }
    if (nextToken) seenTokens.add(nextToken);
  } while (nextToken);
  return addresses;
}

function awsAddressType(value: string | undefined): AwsDiscoverAddressType {
  return value === 'public_v4' || value === 'public_v6' ? value : 'private_v4';
}

async function defaultRegion(env: Env, opts: DiscoverAwsOptions): Promise<string> {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (region) return region;
  const metadataUri = env.ECS_CONTAINER_METADATA_URI_V4;
  if (metadataUri) {
    return taskInfo(await new TaskMetadataClient({ baseUrl: metadataUri, dispatcher: opts.dispatcher, clock: opts.clock }).task()).region;
  }
  throw new ConsulEcsError(
    'aws-region-missing',
    'no AWS region for provider=aws: add region=<region> to the discover configuration, set AWS_REGION, or run in an ECS task',
  );
}

function ec2Endpoint(configured: string | undefined, env: Env, region: string): URL {
  const ignoreEnv = env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true';
  const fromEnv = ignoreEnv ? undefined : env.AWS_ENDPOINT_URL_EC2 || env.AWS_ENDPOINT_URL;
  const raw = configured || fromEnv || `https://ec2.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
  const where = configured ? 'endpoint= of the discover configuration' : fromEnv ? 'AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL' : `region ${region}`;
  let url: URL | undefined;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search) {
    throw new ConsulEcsError('aws-endpoint-invalid', `the EC2 endpoint "${raw}" (${where}) is not a URL; use https://host[:port]`);
  }
  return url;
}

interface Ec2Instance {
  privateIpAddress: string;
  ipAddress: string;
  ipv6Addresses: string[];
}

/** The instances of a `DescribeInstancesResponse`, reservation by reservation. */
function pageInstances(page: Record<string, unknown>): Ec2Instance[] {
  return items(page.reservationSet).flatMap((reservation) =>
    items(reservation.instancesSet).map((instance) => ({
      privateIpAddress: text(instance.privateIpAddress),
      ipAddress: text(instance.ipAddress),
      ipv6Addresses: items(instance.networkInterfaceSet).flatMap((eni) => items(eni.ipv6AddressesSet).map((a) => text(a.ipv6Address))),
    })),
  );
}

function instanceAddresses(instance: Ec2Instance, addrType: AwsDiscoverAddressType): string[] {
  const found = addrType === 'public_v6' ? instance.ipv6Addresses : [addrType === 'public_v4' ? instance.ipAddress : instance.privateIpAddress];
  return found.filter(Boolean);
}

/** The `<item>` elements of an EC2 list (the parser makes them arrays; an empty list is an empty element). */
function items(list: unknown): Array<Record<string, unknown>> {
  const item = list && typeof list === 'object' ? (list as { item?: unknown }).item : undefined;
  return Array.isArray(item) ? item.filter((i): i is Record<string, unknown> => !!i && typeof i === 'object') : [];
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}
