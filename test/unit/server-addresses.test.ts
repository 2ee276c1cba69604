import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveServerAddresses, type ServerAddressCommandResult, type ServerAddressCommandRunner, type ServerAddressLookup } from '@consul-ecs-ts/core';
import { rejection } from '../helpers/rejection.ts';

const noLookup: ServerAddressLookup = () => assert.fail('lookup must not be called');
const noExec: ServerAddressCommandRunner = () => assert.fail('exec must not be called');

function fakeExec(result: Partial<ServerAddressCommandResult>): { exec: ServerAddressCommandRunner; calls: Array<[string, readonly string[]]> } {
  const calls: Array<[string, readonly string[]]> = [];
  const exec: ServerAddressCommandRunner = async (file, args) => {
    calls.push([file, args]);
    return { exitCode: 0, stdout: '', stderr: '', ...result };
  };
  return { exec, calls };
}

const EXEC_HINT = '; the command must print the Consul server IP addresses on stdout and exit 0';

describe('resolveServerAddresses', () => {
  it('returns an IPv4 or IPv6 address as is', async () => {
    for (const ip of ['10.0.0.5', '2001:db8::1', ' 10.0.0.6 ']) {
      assert.deepEqual(await resolveServerAddresses(ip, { lookup: noLookup, exec: noExec }), [ip.trim()]);
    }
  });

  it('looks a DNS name up for all its addresses, without duplicates', async () => {
    const calls: unknown[] = [];
    const lookup: ServerAddressLookup = async (hostname, options) => {
      calls.push([hostname, options]);
      return [
        { address: '10.0.0.1', family: 4 },
        { address: 'fd00::1', family: 6 },
        { address: '10.0.0.1', family: 4 },
      ];
    };
    assert.deepEqual(await resolveServerAddresses('consul.dc1', { lookup, exec: noExec }), ['10.0.0.1', 'fd00::1']);
    assert.deepEqual(calls, [['consul.dc1', { all: true }]]);
  });

  it('names the host and the resolver error when a lookup fails', async () => {
    const lookup: ServerAddressLookup = async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND consul.nowhere'), { code: 'ENOTFOUND' });
    };
    const err = await rejection(resolveServerAddresses('consul.nowhere', { lookup }));
    assert.equal(err.code, 'consul-servers-lookup-failed');
    assert.equal(
      err.message,
      'cannot resolve consulServers.hosts "consul.nowhere": getaddrinfo ENOTFOUND consul.nowhere; ' +
        'check the DNS name, or set an IP address or exec=<command>',
    );
    const none = await rejection(resolveServerAddresses('consul.empty', { lookup: async () => [] }));
    assert.equal(none.message, 'consulServers.hosts "consul.empty" resolves to no addresses; check its DNS records');
  });

  it('uses the system resolver by default', async () => {
    const addresses = await resolveServerAddresses('localhost');
    assert.ok(
      addresses.some((a) => a === '127.0.0.1' || a === '::1'),
      `localhost resolved to ${addresses.join(', ')}`,
    );
  });

  it('refuses empty hosts with what to set', async () => {
    const err = await rejection(resolveServerAddresses('  ', { lookup: noLookup, exec: noExec }));
    assert.equal(err.code, 'consul-servers-hosts-empty');
    assert.equal(err.message, 'consulServers.hosts is empty: set it to a DNS name, an IP address or exec=<command> that prints the Consul server addresses');
  });
});

describe('resolveServerAddresses with exec=', () => {
  it('splits the command on whitespace (no shell) and parses the addresses it prints, as go-netaddrs does', async () => {
    const { exec, calls } = fakeExec({ stdout: '10.0.0.1\n"10.0.0.2"\tfe80::1%eth0  10.0.0.1\n' });
    const addresses = await resolveServerAddresses('exec=/bin/discover -q addrs  provider=aws "tag_key=consul server"', { exec, lookup: noLookup });
    assert.deepEqual(addresses, ['10.0.0.1', '10.0.0.2', 'fe80::1%eth0']);
    assert.deepEqual(calls, [['/bin/discover', ['-q', 'addrs', 'provider=aws', '"tag_key=consul', 'server"']]]);
  });

  it('names the command, its exit code and its stderr when it fails', async () => {
    const { exec } = fakeExec({ exitCode: 3, stderr: `  no servers tagged consul-server\n${'x'.repeat(2000)}` });
    const err = await rejection(resolveServerAddresses('exec=discover-servers --tag consul', { exec }));
    assert.equal(err.code, 'consul-servers-exec-failed');
    assert.equal(
      err.message,
      `consulServers.hosts "exec=discover-servers --tag consul" failed: it exited with code 3: no servers tagged consul-server\n${'x'.repeat(992)}${EXEC_HINT}`,
    );
  });

  it('says so when the command prints nothing, or prints something that is not an IP address', async () => {
    const quiet = await rejection(resolveServerAddresses('exec=discover', fakeExec({ stdout: ' \n' })));
    assert.equal(quiet.message, `consulServers.hosts "exec=discover" failed: it printed no addresses on stdout${EXEC_HINT}`);
    const silentFailure = await rejection(resolveServerAddresses('exec=discover', fakeExec({ exitCode: 1 })));
    assert.equal(silentFailure.message, `consulServers.hosts "exec=discover" failed: it exited with code 1 and printed nothing on stderr${EXEC_HINT}`);
    const wrong = await rejection(resolveServerAddresses('exec=discover', fakeExec({ stdout: '10.0.0.1 consul.dc1' })));
    assert.equal(wrong.message, `consulServers.hosts "exec=discover" failed: it printed "consul.dc1", which is not an IP address${EXEC_HINT}`);
    const none = await rejection(resolveServerAddresses('exec= ', { exec: noExec }));
    assert.equal(none.message, `consulServers.hosts "exec=" failed: no command after exec=${EXEC_HINT}`);
  });

  it('reports a runner that cannot start the command', async () => {
    const err = await rejection(resolveServerAddresses('exec=list-servers', fakeExec({ exitCode: undefined, failure: 'spawn list-servers ENOENT' })));
    assert.equal(err.message, `consulServers.hosts "exec=list-servers" failed: it did not finish: spawn list-servers ENOENT${EXEC_HINT}`);
  });
});

describe('resolveServerAddresses with exec= and the default runner', () => {
  let dir: string;
  let script: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'server-addresses-'));
    script = join(dir, 'discover.sh');
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        'case "$1" in',
        '  ok) echo "10.1.0.1 10.1.0.2"; echo "\\"10.1.0.3\\"" ;;',
        '  args) echo "$#" >&2; exit 4 ;;',
        '  slow) sleep 2 ;;',
        'esac',
        '',
      ].join('\n'),
    );
    chmodSync(script, 0o755);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the command and reads its stdout', async () => {
    assert.deepEqual(await resolveServerAddresses(`exec=${script} ok`), ['10.1.0.1', '10.1.0.2', '10.1.0.3']);
  });

  it('passes the words after the command as arguments and reports a non-zero exit', async () => {
    const err = await rejection(resolveServerAddresses(`exec=${script} args two three`));
    assert.equal(err.message, `consulServers.hosts "exec=${script} args two three" failed: it exited with code 4: 3${EXEC_HINT}`);
  });

  it('reports a command that does not exist', async () => {
    const err = await rejection(resolveServerAddresses(`exec=${join(dir, 'missing')}`));
    assert.equal(err.code, 'consul-servers-exec-failed');
    assert.match(err.message, /failed: it did not finish: .*ENOENT/);
  });

  it('stops the command when the signal aborts', async () => {
    const started = Date.now();
    const err = await rejection(resolveServerAddresses(`exec=${script} slow`, { signal: AbortSignal.timeout(100) }));
    assert.match(err.message, /failed: it did not finish: stopped \(The operation was aborted due to timeout\)/);
    assert.ok(Date.now() - started < 1500, 'the command was not stopped');
  });
});
