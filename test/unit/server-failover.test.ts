import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConsulEcsError, ConsulHttpClient, createLogger } from '@consul-ecs-ts/core';
import { ServerFailover, type UsesConsulServer } from '../../packages/core/src/consul/server-failover.ts';
import { fakeClock } from '../helpers/fake-clock.ts';

const unreachable = () => new ConsulEcsError('consul-unreachable', 'could not connect');

/** A client that records whether it was closed; it never sends anything here. */
function client(address: string): ConsulHttpClient & { closed: boolean } {
  const c = new ConsulHttpClient({ address }) as ConsulHttpClient & { closed: boolean };
  c.closed = false;
  c.close = async () => {
    c.closed = true;
  };
  return c;
}

function setUp(addresses: string[], rediscovered: string[][]) {
  const clock = fakeClock();
  let log = '';
  const user: UsesConsulServer = { http: undefined as unknown as ConsulHttpClient };
  const given = addresses.map(client);
  user.http = given[0]!;
  const made: Array<ConsulHttpClient & { closed: boolean }> = [];
  let rediscoveries = 0;
  const failover = new ServerFailover(given, [user], createLogger({ level: 'debug', write: (t) => (log += t) }), {
    clock,
    rediscover: async () => {
      const found = (rediscovered[rediscoveries++] ?? []).map(client);
      made.push(...found);
      return found;
    },
  });
  return { clock, user, given, made, failover, log: () => log, rediscoveries: () => rediscoveries };
}

describe('ServerFailover', () => {
  it('moves to the next server on a connection failure, round robin; other errors change nothing', async () => {
    const t = setUp(['10.0.0.1:8500', '10.0.0.2:8500'], [['10.0.0.1', '10.0.0.2'].map((a) => `${a}:8500`)]);
    t.failover.onError(new ConsulEcsError('consul-permission-denied', 'no'));
    assert.equal(t.user.http, t.given[0]);
    t.failover.onError(unreachable());
    assert.equal(t.user.http, t.given[1]);
    t.failover.onError(unreachable());
    assert.equal(t.user.http, t.given[0]);
    await t.failover.settled();
    // Both failed one after the other: the servers were looked up again, and are the same ones.
    assert.equal(t.rediscoveries(), 1);
    assert.ok(
      t.made.every((c) => c.closed),
      'the clients of an unchanged lookup are closed',
    );
    assert.doesNotMatch(t.log(), /new addresses/);
  });

  it('once every known server has failed, moves to the servers found at new addresses, and closes its own clients', async () => {
    const t = setUp(['10.0.0.1:8500'], [['10.0.1.1:8500', '10.0.1.2:8500'], ['10.0.2.1:8500']]);
    t.failover.onError(unreachable());
    await t.failover.settled();
    assert.equal(t.user.http.baseUrl.origin, 'http://10.0.1.1:8500');
    assert.deepEqual(
      t.failover.clients.map((c) => c.baseUrl.host),
      ['10.0.1.1:8500', '10.0.1.2:8500'],
    );
    assert.match(t.log(), /found the Consul servers at new addresses: addresses=http:\/\/10\.0\.1\.1:8500,http:\/\/10\.0\.1\.2:8500/);
    assert.equal(t.given[0]!.closed, false, "the caller's clients are the caller's to close");

    // Both new ones fail; the next lookup waits for 10 s since the last.
    t.failover.onError(unreachable());
    t.failover.onError(unreachable());
    await t.failover.settled();
    assert.equal(t.rediscoveries(), 1);
    t.clock.advance(10_000);
    t.failover.onError(unreachable());
    t.failover.onError(unreachable());
    await t.failover.settled();
    assert.equal(t.rediscoveries(), 2);
    assert.equal(t.user.http.baseUrl.origin, 'http://10.0.2.1:8500');
    assert.deepEqual(
      t.made.map((c) => c.closed),
      [true, true, false],
      'the retired clients it made are closed',
    );
    await t.failover.close();
    assert.equal(t.made[2]!.closed, true);
  });

  it('keeps the servers it knows when the lookup fails or finds none', async () => {
    const t = setUp(['10.0.0.1:8500'], [[]]);
    t.failover.onError(unreachable());
    await t.failover.settled();
    assert.equal(t.user.http, t.given[0]);
    const failing = new ServerFailover(t.given, [t.user], createLogger({ level: 'warn', write: () => {} }), {
      rediscover: async () => {
        throw new Error('exec=discover: exit 1');
      },
    });
    failing.onError(unreachable());
    await failing.settled();
    assert.equal(t.user.http, t.given[0]);
  });
});
