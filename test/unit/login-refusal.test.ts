// Which failed logins are worth another try: Consul passes an auth method's
// verdicts through as HTTP 500, and also the errors of a follower whose call
// to the leader failed while the cluster changed leader.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoginRefusal } from '../../packages/core/src/consul/acl.ts';

describe('isLoginRefusal', () => {
  it('retries what a follower answers while the leader it forwarded the login to stops or is being elected', () => {
    for (const body of [
      'rpc error making call: stream closed',
      'rpc error making call: session shutdown',
      'rpc error making call: EOF',
      'rpc error getting client: failed to get conn: dial tcp 127.0.0.1:8300: connect: connection refused',
      'rpc error making call: read tcp 127.0.0.2:51000->127.0.0.1:8300: read: connection reset by peer',
      'rpc error making call: write tcp 127.0.0.2:51000->127.0.0.1:8300: write: broken pipe',
      'No cluster leader',
      'leadership lost while committing log',
    ]) {
      assert.equal(isLoginRefusal(500, body), false, body);
    }
  });

  it("keeps an auth method's verdicts and other 500s final", () => {
    for (const body of [
      'Permission denied: IAM principal arn:aws:iam::1:role/x is not trusted',
      'invalid bind name: entity_tags',
      'rpc error making call: expected "consul.test.local" but got "other"',
      'failed to validate bearer token: something else',
    ]) {
      assert.equal(isLoginRefusal(500, body), true, body);
    }
    assert.equal(isLoginRefusal(403, 'Permission denied'), true);
    assert.equal(isLoginRefusal(429, 'rate limit exceeded'), false);
  });
});
