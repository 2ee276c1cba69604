// What the control-plane command keeps out of transparent proxy's redirection:
// its own calls to the Consul servers and the ECS agent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { transparentProxyRules } from '@consul-ecs-ts/core';
import { ownTrafficCidrs } from '../../packages/core/src/tproxy/own-traffic.ts';

describe('ownTrafficCidrs', () => {
  it('the Consul servers and the ECS agent of an awsvpc task, each once', () => {
    const env = {
      ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/0123abcd-1234',
      ECS_CONTAINER_METADATA_URI: 'http://169.254.170.2/v3/0123abcd-1234',
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/5678',
    };
    assert.deepEqual(ownTrafficCidrs(['10.0.1.5', '10.0.2.7', '10.0.1.5'], env), ['10.0.1.5/32', '10.0.2.7/32', '169.254.170.2/32']);
  });

  it('a full credentials URI on another IPv4 address is excluded too; names and IPv6 are not (the rules are IPv4 addresses)', () => {
    const env = {
      ECS_CONTAINER_METADATA_URI_V4: 'http://[fd00:ec2::23]/v4/abc',
      AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://127.0.0.1:51679/v2/credentials/abc',
    };
    assert.deepEqual(ownTrafficCidrs(['consul.example.internal', 'fd00::5', '192.0.2.10'], env), ['192.0.2.10/32', '127.0.0.1/32']);
  });

  it('nothing to exclude without servers by IP or agent endpoints; a malformed URI is left to the command that reads it', () => {
    assert.deepEqual(ownTrafficCidrs([], {}), []);
    assert.deepEqual(ownTrafficCidrs([], { ECS_CONTAINER_METADATA_URI_V4: 'not a url' }), []);
  });

  it('the CIDRs become RETURN rules of the outbound chain, before the redirect', () => {
    const rules = transparentProxyRules({
      excludeOutboundCIDRs: ownTrafficCidrs(['10.0.1.5'], { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/x' }),
    });
    const lines = rules.map((r) => r.args.join(' '));
    for (const cidr of ['10.0.1.5/32', '169.254.170.2/32'])
      assert.ok(lines.includes(`-I CONSUL_PROXY_OUTPUT -d ${cidr} -j RETURN`), `${cidr} in ${lines.join('\n')}`);
  });
});
