// consulServers.hosts "exec=discover -q addrs provider=aws …" (go-discover's
// cloud auto-join) without go-discover: its arguments read as go-discover reads
// them, and EC2 DescribeInstances answers (undici MockAgent) read into the
// addresses `discover addrs` prints.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MockAgent } from 'undici';
import {
  ConsulEcsError,
  discoverAwsAddresses,
  parseGoDiscoverArgs,
  parseGoDiscoverConfig,
  resolveServerAddresses,
  type ServerAddressCommandRunner,
} from '@consul-ecs-ts/core';
import { rejection } from '../helpers/rejection.ts';

function invalid(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConsulEcsError, String(err));
    assert.equal(err.code, 'consul-servers-discover-invalid');
    assert.equal(err.message, `${message}; write it as discover -q addrs provider=<name> key=value ...`);
    return true;
  });
}

describe('parseGoDiscoverConfig', () => {
  it('reads every key of provider=aws', () => {
    assert.deepEqual(
      parseGoDiscoverConfig(
        'provider=aws region=eu-west-1 tag_key=consul tag_value=server addr_type=public_v4 access_key_id=AKIAEXAMPLE ' +
          'secret_access_key=c2VjcmV0/+x session_token="FwoGZX==" endpoint=http://127.0.0.1:5000 service=ec2',
      ),
      {
        provider: 'aws',
        region: 'eu-west-1',
        tag_key: 'consul',
        tag_value: 'server',
        addr_type: 'public_v4',
        access_key_id: 'AKIAEXAMPLE',
        secret_access_key: 'c2VjcmV0/+x',
        session_token: 'FwoGZX==',
        endpoint: 'http://127.0.0.1:5000',
        service: 'ec2',
      },
    );
  });

  it('takes spaces around the words and around =', () => {
    assert.deepEqual(parseGoDiscoverConfig('  provider = aws   tag_key= consul tag_value =server '), {
      provider: 'aws',
      tag_key: 'consul',
      tag_value: 'server',
    });
    assert.deepEqual(parseGoDiscoverConfig(''), {});
    assert.deepEqual(parseGoDiscoverConfig('   '), {});
  });

  it('unquotes double-quoted keys and values with Go escapes', () => {
    assert.deepEqual(parseGoDiscoverConfig('provider=aws tag_value="consul server" "some key"="say \\"hi\\"" x="a=b\\\\c"'), {
      provider: 'aws',
      tag_value: 'consul server',
      'some key': 'say "hi"',
      x: 'a=b\\c',
    });
    assert.deepEqual(parseGoDiscoverConfig('a="\\t\\n\\x41\\101\\u00e9\\U0001F600" b=""'), { a: '\t\nAAé😀', b: '' });
    // A quote inside an unquoted word is part of it.
    assert.deepEqual(parseGoDiscoverConfig('a=b"c'), { a: 'b"c' });
  });

  it('refuses what go-discover refuses, saying what is wrong', () => {
    invalid(() => parseGoDiscoverConfig('provider=aws provider=gce'), 'discover: provider: duplicate key');
    invalid(() => parseGoDiscoverConfig('provider'), "discover: provider: missing '='");
    invalid(() => parseGoDiscoverConfig('provider aws'), "discover: provider: missing '='");
    invalid(() => parseGoDiscoverConfig('provider='), 'discover: provider: missing value');
    invalid(() => parseGoDiscoverConfig('provider=='), 'discover: provider: missing value');
    invalid(
      () => parseGoDiscoverConfig('tag_value=a=b'),
      `discover: tag_value: an "=" in tag_value's value needs the value in double quotes, tag_value="value-with-="`,
    );
    invalid(() => parseGoDiscoverConfig('=aws'), 'discover: : an "=" in a key needs the value in double quotes, key="value-with-="');
    invalid(() => parseGoDiscoverConfig('tag_value="consul server'), 'discover: tag_value: unbalanced quotes');
    invalid(() => parseGoDiscoverConfig('tag_value="consul\\'), 'discover: tag_value: unterminated escape sequence');
    invalid(() => parseGoDiscoverConfig('tag_value="\\q"'), 'discover: tag_value: invalid syntax');
    invalid(() => parseGoDiscoverConfig('tag_value="\\\'"'), 'discover: tag_value: invalid syntax');
    invalid(() => parseGoDiscoverConfig('tag_value="\\x4"'), 'discover: tag_value: invalid syntax');
    invalid(() => parseGoDiscoverConfig('"key'), 'discover: : error with key=value pair: unbalanced quotes');
  });
});

describe('parseGoDiscoverArgs', () => {
  it('reads -q, the addrs subcommand and the configuration given as several arguments', () => {
    assert.deepEqual(parseGoDiscoverArgs(['-q', 'addrs', 'provider=aws', 'region=us-east-1', 'tag_key=consul', 'tag_value=server']), {
      quiet: true,
      config: { provider: 'aws', region: 'us-east-1', tag_key: 'consul', tag_value: 'server' },
    });
    assert.deepEqual(parseGoDiscoverArgs(['addrs', 'provider=gce', 'tag_value=consul']), { quiet: false, config: { provider: 'gce', tag_value: 'consul' } });
  });

  it('joins the arguments with spaces before parsing, as discover does: quotes may span arguments', () => {
    assert.deepEqual(parseGoDiscoverArgs(['addrs', 'provider=aws', 'tag_key=consul', 'tag_value="consul', 'server"']).config, {
      provider: 'aws',
      tag_key: 'consul',
      tag_value: 'consul server',
    });
    assert.deepEqual(parseGoDiscoverArgs(['addrs', 'provider', '=', 'aws']).config, { provider: 'aws' });
  });

  it('parses the flags as Go does', () => {
    for (const flags of [['--q'], ['-q=true'], ['-q=1'], ['-q=T'], ['-q', '-q=True']]) {
      assert.equal(parseGoDiscoverArgs([...flags, 'addrs', 'provider=aws']).quiet, true, flags.join(' '));
    }
    for (const flags of [[], ['-q=false'], ['-q=0'], ['-q=F'], ['-q', '-q=FALSE'], ['-h=false']]) {
      assert.equal(parseGoDiscoverArgs([...flags, 'addrs', 'provider=aws']).quiet, false, flags.join(' '));
    }
    // "--" ends the flags; so does the first argument that is not one.
    assert.equal(parseGoDiscoverArgs(['--', 'addrs', 'provider=aws']).quiet, false);
    invalid(() => parseGoDiscoverArgs(['addrs', '-q', 'provider=aws']), "discover: -q: missing '='");
  });

  it('refuses what discover would not print addresses for', () => {
    invalid(() => parseGoDiscoverArgs(['-x', 'addrs', 'provider=aws']), 'discover: flag provided but not defined: -x');
    invalid(() => parseGoDiscoverArgs(['-q=yes', 'addrs']), 'discover: invalid boolean value "yes" for -q: parse error');
    invalid(() => parseGoDiscoverArgs(['---q', 'addrs']), 'discover: bad flag syntax: ---q');
    invalid(() => parseGoDiscoverArgs(['-=q', 'addrs']), 'discover: bad flag syntax: -=q');
    invalid(() => parseGoDiscoverArgs(['-h', 'addrs', 'provider=aws']), 'discover -h prints its usage, not addresses');
    invalid(() => parseGoDiscoverArgs(['-help']), 'discover -help prints its usage, not addresses');
    invalid(() => parseGoDiscoverArgs(['-q']), 'discover without addrs prints its usage, not addresses');
    invalid(() => parseGoDiscoverArgs(['addr', 'provider=aws']), 'discover has no subcommand "addr"; it prints its usage, not addresses');
    invalid(() => parseGoDiscoverArgs(['-q', 'addrs']), 'discover: no provider');
    invalid(() => parseGoDiscoverArgs(['-q', 'addrs', 'region=us-east-1']), 'discover: no provider');
  });
});

const EC2 = 'https://ec2.eu-west-1.amazonaws.com';
const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'task-session' };

interface Ec2InstanceSpec {
  id: string;
  privateIp?: string;
  publicIp?: string;
  ipv6?: string[][];
}

/** A DescribeInstances answer as EC2 writes it: reservations of instances, lists as <item>s. */
function describeInstancesXml(reservations: Ec2InstanceSpec[][], nextToken?: string): string {
  const instance = (i: Ec2InstanceSpec) => `
        <item>
          <instanceId>${i.id}</instanceId>
          <imageId>ami-12c6146b</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          ${i.privateIp ? `<privateIpAddress>${i.privateIp}</privateIpAddress>` : ''}
          ${i.publicIp ? `<ipAddress>${i.publicIp}</ipAddress>` : ''}
          <groupSet><item><groupId>sg-1</groupId><groupName>default</groupName></item></groupSet>
          <tagSet><item><key>consul</key><value>server</value></item></tagSet>
          <networkInterfaceSet>${(i.ipv6 ?? [[]])
            .map(
              (eni, n) => `
            <item>
              <networkInterfaceId>eni-${i.id}-${n}</networkInterfaceId>
              <privateIpAddress>${i.privateIp ?? ''}</privateIpAddress>
              <ipv6AddressesSet>${eni.map((a) => `<item><ipv6Address>${a}</ipv6Address><isPrimaryIpv6>false</isPrimaryIpv6></item>`).join('')}</ipv6AddressesSet>
            </item>`,
            )
            .join('')}
          </networkInterfaceSet>
        </item>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>${reservations
    .map(
      (r, n) => `
    <item>
      <reservationId>r-${n}</reservationId>
      <ownerId>123456789012</ownerId>
      <instancesSet>${r.map(instance).join('')}</instancesSet>
    </item>`,
    )
    .join('')}
  </reservationSet>${nextToken ? `\n  <nextToken>${nextToken}</nextToken>` : ''}
</DescribeInstancesResponse>`;
}

interface Ec2Call {
  params: Record<string, string>;
  headers: Record<string, string>;
}

/** Intercepts EC2 calls at `origin`; `answer` gets each call's form parameters. */
function mockEc2(agent: MockAgent, origin: string, answer: (params: Record<string, string>) => { status?: number; body: string }): Ec2Call[] {
  const calls: Ec2Call[] = [];
  agent
    .get(origin)
    .intercept({ path: '/', method: 'POST' })
    .reply((req) => {
      const params = Object.fromEntries(new URLSearchParams(String(req.body)));
      calls.push({ params, headers: req.headers as Record<string, string> });
      const { status, body } = answer(params);
      return { statusCode: status ?? 200, data: body, responseOptions: { headers: { 'content-type': 'text/xml;charset=UTF-8' } } };
    })
    .persist();
  return calls;
}

function agentWithoutNetwork(): MockAgent {
  const agent = new MockAgent();
  agent.disableNetConnect();
  return agent;
}

const SERVERS: Ec2InstanceSpec[][] = [
  [
    { id: 'i-1', privateIp: '10.0.1.10', publicIp: '54.1.1.10', ipv6: [['2600:1f18::10'], ['2600:1f18::11', '2600:1f18::12']] },
    { id: 'i-2', privateIp: '10.0.1.11' },
  ],
  [{ id: 'i-3', privateIp: '10.0.2.10', publicIp: '54.1.1.12', ipv6: [['2600:1f18::20']] }],
];

describe('discoverAwsAddresses', () => {
  it('calls DescribeInstances for the running instances with the tag, signed for ec2 in the region, and lists the private IPv4 addresses in order', async () => {
    const agent = agentWithoutNetwork();
    const calls = mockEc2(agent, EC2, () => ({ body: describeInstancesXml(SERVERS) }));
    const addresses = await discoverAwsAddresses(
      { provider: 'aws', region: 'eu-west-1', tag_key: 'consul', tag_value: 'server' },
      { dispatcher: agent, credentials: async () => CREDS, env: {}, clock: { now: () => Date.parse('2026-01-02T03:04:05Z'), sleep: async () => {} } },
    );
    assert.deepEqual(addresses, ['10.0.1.10', '10.0.1.11', '10.0.2.10']);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.params, {
      Action: 'DescribeInstances',
      Version: '2016-11-15',
      'Filter.1.Name': 'tag:consul',
      'Filter.1.Value.1': 'server',
      'Filter.2.Name': 'instance-state-name',
      'Filter.2.Value.1': 'running',
    });
    const { headers } = calls[0]!;
    assert.match(headers.Authorization!, /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20260102\/eu-west-1\/ec2\/aws4_request, SignedHeaders=/);
    assert.equal(headers['X-Amz-Date'], '20260102T030405Z');
    assert.equal(headers['X-Amz-Security-Token'], 'task-session');
  });

  it('gives the public IPv4 or every IPv6 address with addr_type; any other addr_type is private_v4', async () => {
    const agent = agentWithoutNetwork();
    mockEc2(agent, EC2, () => ({ body: describeInstancesXml(SERVERS) }));
    const discover = (addr_type: string) =>
      discoverAwsAddresses(
        { provider: 'aws', region: 'eu-west-1', tag_key: 'consul', tag_value: 'server', addr_type },
        { dispatcher: agent, credentials: async () => CREDS, env: {} },
      );
    assert.deepEqual(await discover('public_v4'), ['54.1.1.10', '54.1.1.12']);
    assert.deepEqual(await discover('public_v6'), ['2600:1f18::10', '2600:1f18::11', '2600:1f18::12', '2600:1f18::20']);
    for (const other of ['private_v4', 'private_v6', 'bogus', '']) assert.deepEqual(await discover(other), ['10.0.1.10', '10.0.1.11', '10.0.2.10']);
  });

  it('follows NextToken over every page, with MaxResults when a page size is given', async () => {
    const agent = agentWithoutNetwork();
    const pages: Record<string, string> = {
      '': describeInstancesXml([SERVERS[0]!], 'page-2'),
      'page-2': describeInstancesXml([], 'page-3'),
      'page-3': describeInstancesXml([SERVERS[1]!]),
    };
    const calls = mockEc2(agent, EC2, (p) => ({ body: pages[p.NextToken ?? '']! }));
    const addresses = await discoverAwsAddresses(
      { provider: 'aws', region: 'eu-west-1', tag_key: 'consul', tag_value: 'server' },
      { dispatcher: agent, credentials: async () => CREDS, env: {}, pageSize: 5 },
    );
    assert.deepEqual(addresses, ['10.0.1.10', '10.0.1.11', '10.0.2.10']);
    assert.deepEqual(
      calls.map((c) => [c.params.NextToken, c.params.MaxResults]),
      [
        [undefined, '5'],
        ['page-2', '5'],
        ['page-3', '5'],
      ],
    );
  });

  it('gives no addresses when no instance matches, and stops on a repeated NextToken', async () => {
    const agent = agentWithoutNetwork();
    mockEc2(agent, EC2, (p) => ({ body: p['Filter.1.Value.1'] === 'loop' ? describeInstancesXml([], 'again') : describeInstancesXml([]) }));
    const opts = { dispatcher: agent, credentials: async () => CREDS, env: {} };
    assert.deepEqual(await discoverAwsAddresses({ provider: 'aws', region: 'eu-west-1', tag_key: 'consul', tag_value: 'none' }, opts), []);
    await assert.rejects(discoverAwsAddresses({ provider: 'aws', region: 'eu-west-1', tag_key: 'consul', tag_value: 'loop' }, opts), {
      code: 'aws-bad-response',
      message: `EC2 DescribeInstances at ${EC2} gave the same NextToken twice`,
    });
  });

  it('uses the keys of the configuration over the default credentials, with the session token', async () => {
    const agent = agentWithoutNetwork();
    const calls = mockEc2(agent, EC2, () => ({ body: describeInstancesXml([]) }));
    const config = {
      provider: 'aws',
      region: 'eu-west-1',
      tag_key: 'consul',
      tag_value: 'server',
      access_key_id: 'AKIACONFIG',
      secret_access_key: 'config-secret',
    };
    const unused = () => assert.fail('the default credentials must not be asked for');
    await discoverAwsAddresses(config, { dispatcher: agent, credentials: unused, env: {} });
    await discoverAwsAddresses({ ...config, session_token: 'config-session' }, { dispatcher: agent, credentials: unused, env: {} });
    assert.match(calls[0]!.headers.Authorization!, /Credential=AKIACONFIG\//);
    assert.equal(calls[0]!.headers['X-Amz-Security-Token'], undefined);
    assert.equal(calls[1]!.headers['X-Amz-Security-Token'], 'config-session');
    // One key alone is not static credentials (as in go-discover): the default ones are used.
    await discoverAwsAddresses({ ...config, secret_access_key: '' }, { dispatcher: agent, credentials: async () => CREDS, env: {} });
    assert.match(calls[2]!.headers.Authorization!, /Credential=AKIDEXAMPLE\//);
    // With no credentials given, the environment's keys.
    await discoverAwsAddresses(
      { provider: 'aws', region: 'eu-west-1', tag_key: 'consul' },
      { dispatcher: agent, env: { AWS_ACCESS_KEY_ID: 'AKIAENV', AWS_SECRET_ACCESS_KEY: 'env-secret' } },
    );
    assert.match(calls[3]!.headers.Authorization!, /Credential=AKIAENV\//);
    assert.equal(calls[3]!.params['Filter.1.Value.1'], '');
  });

  it('takes the region from AWS_REGION, AWS_DEFAULT_REGION, then the task metadata', async () => {
    const agent = agentWithoutNetwork();
    const regions: string[] = [];
    for (const region of ['us-west-2', 'ap-south-1', 'ca-central-1']) {
      mockEc2(agent, `https://ec2.${region}.amazonaws.com`, () => {
        regions.push(region);
        return { body: describeInstancesXml([]) };
      });
    }
    agent
      .get('http://169.254.170.2')
      .intercept({ path: '/v4/task-meta/task', method: 'GET' })
      .reply(200, { TaskARN: 'arn:aws:ecs:ca-central-1:123456789012:task/prod/0123456789abcdef0123456789abcdef', Cluster: 'prod', Containers: [] });
    const config = { provider: 'aws', tag_key: 'consul', tag_value: 'server' };
    const opts = { dispatcher: agent, credentials: async () => CREDS };
    await discoverAwsAddresses(config, { ...opts, env: { AWS_REGION: 'us-west-2', AWS_DEFAULT_REGION: 'ap-south-1' } });
    await discoverAwsAddresses(config, { ...opts, env: { AWS_DEFAULT_REGION: 'ap-south-1' } });
    await discoverAwsAddresses(config, { ...opts, env: { ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/task-meta' } });
    assert.deepEqual(regions, ['us-west-2', 'ap-south-1', 'ca-central-1']);
    await assert.rejects(discoverAwsAddresses(config, { ...opts, env: {} }), {
      code: 'aws-region-missing',
      message: 'no AWS region for provider=aws: add region=<region> to the discover configuration, set AWS_REGION, or run in an ECS task',
    });
  });

  it('calls the endpoint of the configuration, else AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL', async () => {
    const agent = agentWithoutNetwork();
    const hits: string[] = [];
    for (const origin of [
      'http://config.test:5000',
      'http://ec2-env.test',
      'http://any-env.test',
      'https://bare.test',
      'https://ec2.cn-north-1.amazonaws.com.cn',
    ]) {
      mockEc2(agent, origin, () => {
        hits.push(origin);
        return { body: describeInstancesXml([]) };
      });
    }
    const config = { provider: 'aws', region: 'us-east-1', tag_key: 'consul', tag_value: 'server' };
    const opts = { dispatcher: agent, credentials: async () => CREDS };
    const env = { AWS_ENDPOINT_URL_EC2: 'http://ec2-env.test', AWS_ENDPOINT_URL: 'http://any-env.test' };
    await discoverAwsAddresses({ ...config, endpoint: 'http://config.test:5000' }, { ...opts, env });
    await discoverAwsAddresses(config, { ...opts, env });
    await discoverAwsAddresses(config, { ...opts, env: { AWS_ENDPOINT_URL: 'http://any-env.test' } });
    await discoverAwsAddresses({ ...config, endpoint: 'bare.test' }, { ...opts, env: {} });
    await discoverAwsAddresses({ ...config, region: 'cn-north-1' }, { ...opts, env: { ...env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' } });
    assert.deepEqual(hits, [
      'http://config.test:5000',
      'http://ec2-env.test',
      'http://any-env.test',
      'https://bare.test',
      'https://ec2.cn-north-1.amazonaws.com.cn',
    ]);
    await assert.rejects(discoverAwsAddresses({ ...config, endpoint: 'ftp://x.test' }, { ...opts, env: {} }), {
      code: 'aws-endpoint-invalid',
      message: 'the EC2 endpoint "ftp://x.test" (endpoint= of the discover configuration) is not a URL; use https://host[:port]',
    });
  });

  it("reports EC2's error answer", async () => {
    const agent = agentWithoutNetwork();
    mockEc2(agent, EC2, () => ({
      status: 403,
      body: '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>r-1</RequestID></Response>',
    }));
    await assert.rejects(
      discoverAwsAddresses({ provider: 'aws', region: 'eu-west-1', tag_key: 'consul' }, { dispatcher: agent, credentials: async () => CREDS, env: {} }),
      {
        code: 'aws-api-error',
        awsCode: 'UnauthorizedOperation',
        message: `AWS DescribeInstances at ${EC2} failed with HTTP 403 UnauthorizedOperation: You are not authorized to perform this operation.`,
      },
    );
  });

  it('needs provider=aws, the EC2 service and tag_key', async () => {
    await assert.rejects(discoverAwsAddresses({ provider: 'gce' }), { code: 'consul-servers-discover-invalid' });
    await assert.rejects(discoverAwsAddresses({ provider: 'aws', service: 'ecs', tag_key: 'consul' }), { code: 'consul-servers-discover-invalid' });
    await assert.rejects(discoverAwsAddresses({ provider: 'aws', tag_value: 'server' }), {
      code: 'consul-servers-discover-invalid',
      message: 'provider=aws needs tag_key (and tag_value): the tag of the Consul servers EC2 instances, e.g. tag_key=consul tag_value=server',
    });
  });
});

describe('resolveServerAddresses with exec=discover', () => {
  const noExec: ServerAddressCommandRunner = () => assert.fail('no command may be run');

  it('resolves provider=aws itself, with no command run, without duplicates', async () => {
    const agent = agentWithoutNetwork();
    mockEc2(agent, EC2, () => ({ body: describeInstancesXml([...SERVERS, [{ id: 'i-1', privateIp: '10.0.1.10' }]]) }));
    for (const command of ['discover', '/usr/local/bin/discover']) {
      const addresses = await resolveServerAddresses(`exec=${command} -q addrs provider=aws region=eu-west-1 tag_key=consul tag_value=server`, {
        exec: noExec,
        dispatcher: agent,
        credentials: async () => CREDS,
        env: {},
      });
      assert.deepEqual(addresses, ['10.0.1.10', '10.0.1.11', '10.0.2.10']);
    }
  });

  it('says which instances it looked for when none is found, and why EC2 failed, never repeating a secret', async () => {
    const agent = agentWithoutNetwork();
    mockEc2(agent, EC2, (p) =>
      p['Filter.1.Value.1'] === 'denied'
        ? {
            status: 401,
            body: '<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors></Response>',
          }
        : { body: describeInstancesXml([]) },
    );
    const opts = { exec: noExec, dispatcher: agent, env: {} };
    const hosts = 'exec=discover addrs provider=aws region=eu-west-1 tag_key=consul tag_value=server access_key_id=AKIACONFIG secret_access_key=s3cr3t/key';
    const none = await rejection(resolveServerAddresses(hosts, opts));
    assert.equal(none.code, 'consul-servers-discover-failed');
    assert.equal(
      none.message,
      'consulServers.hosts "exec=discover addrs provider=aws region=eu-west-1 tag_key=consul tag_value=server access_key_id=AKIACONFIG secret_access_key=(redacted)" ' +
        'found no Consul servers: no running EC2 instance in eu-west-1 with the tag consul=server has a private_v4 address',
    );
    const denied = await rejection(
      resolveServerAddresses('exec=discover addrs provider=aws region=eu-west-1 tag_key=consul tag_value=denied addr_type=public_v6 session_token="a b"', {
        ...opts,
        credentials: async () => CREDS,
      }),
    );
    assert.equal(denied.code, 'consul-servers-discover-failed');
    assert.equal(
      denied.message,
      'consulServers.hosts "exec=discover addrs provider=aws region=eu-west-1 tag_key=consul tag_value=denied addr_type=public_v6 session_token=(redacted)" found no Consul servers: ' +
        `AWS DescribeInstances at ${EC2} failed with HTTP 401 AuthFailure: AWS was not able to validate the provided access credentials (aws-api-error)`,
    );
    assert.ok(!denied.message.includes('s3cr3t') && !none.message.includes('s3cr3t'));
  });

  it('runs discover with arguments go-discover would refuse; when there is none, says what is wrong with them', async () => {
    const usage: ServerAddressCommandRunner = async () => ({ exitCode: 0, stdout: 'Usage: discover addrs key=val key=val ...\n', stderr: '' });
    const printed = await rejection(resolveServerAddresses('exec=discover -q provider=aws', { exec: usage }));
    assert.equal(printed.code, 'consul-servers-exec-failed');
    assert.match(printed.message, /it printed "Usage:", which is not an IP address/);
    const missing: ServerAddressCommandRunner = async () => ({ exitCode: undefined, stdout: '', stderr: '', failure: 'spawn discover ENOENT' });
    const err = await rejection(resolveServerAddresses('exec=discover -q provider=aws', { exec: missing }));
    assert.equal(err.code, 'consul-servers-discover-invalid');
    assert.equal(
      err.message,
      'consulServers.hosts "exec=discover -q provider=aws" prints no addresses: discover has no subcommand "provider=aws"; it prints its usage, not addresses; ' +
        'write it as discover -q addrs provider=<name> key=value ...',
    );
    const noTag = await rejection(resolveServerAddresses('exec=discover -q addrs provider=aws region=us-east-1', { exec: noExec }));
    assert.equal(noTag.code, 'consul-servers-discover-invalid');
  });

  it('runs the discover on PATH for another provider, and for service=ecs', async () => {
    const calls: Array<[string, readonly string[]]> = [];
    const exec: ServerAddressCommandRunner = async (file, args) => {
      calls.push([file, args]);
      return { exitCode: 0, stdout: '10.0.0.1 10.0.0.2\n', stderr: '' };
    };
    assert.deepEqual(await resolveServerAddresses('exec=discover -q addrs provider=gce tag_value=consul', { exec }), ['10.0.0.1', '10.0.0.2']);
    assert.deepEqual(await resolveServerAddresses('exec=discover addrs provider=aws service=ecs tag_key=a tag_value=b', { exec }), ['10.0.0.1', '10.0.0.2']);
    assert.deepEqual(calls, [
      ['discover', ['-q', 'addrs', 'provider=gce', 'tag_value=consul']],
      ['discover', ['addrs', 'provider=aws', 'service=ecs', 'tag_key=a', 'tag_value=b']],
    ]);
  });

  it('says to put discover on PATH or use provider=aws when another provider has no discover', async () => {
    const exec: ServerAddressCommandRunner = async () => ({ exitCode: undefined, stdout: '', stderr: '', failure: 'spawn discover ENOENT' });
    const err = await rejection(resolveServerAddresses('exec=discover -q addrs provider=azure tag_name=consul tag_value=server', { exec }));
    assert.equal(err.code, 'consul-servers-discover-failed');
    assert.equal(
      err.message,
      `consulServers.hosts "exec=discover -q addrs provider=azure tag_name=consul tag_value=server" needs go-discover's discover command for provider=azure, ` +
        "and there is none on PATH: put go-discover's discover on PATH, or use provider=aws (EC2 instances by tag), which consul-ecs resolves itself",
    );
    const ecs = await rejection(resolveServerAddresses('exec=discover addrs provider=aws service=ecs', { exec }));
    assert.match(ecs.message, /needs go-discover's discover command for provider=aws service=ecs, and there is none on PATH/);
  });
});
