import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsulEcsError } from '@consul-ecs-ts/core';
import { envoyInPlaceOfConsulDataplane } from '@consul-ecs-ts/entrypoints';

describe('consul-dataplane in the dataplane image: Envoy in its place', () => {
  let dir: string;
  let self: string;
  let env: Record<string, string>;
  let configFile: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dataplane-stand-in-'));
    // The task's copy of consul-ecs, and the image's link to it on PATH.
    self = join(dir, 'consul', 'consul-ecs');
    mkdirSync(join(dir, 'consul'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(self, '#!/bin/true\n');
    chmodSync(self, 0o755);
    symlinkSync(self, join(dir, 'bin', 'consul-dataplane'));
    configFile = join(dir, 'consul', 'consul-dataplane.json');
    writeFileSync(configFile, JSON.stringify({ logging: { logLevel: 'DEBUG' } }));
    env = { PATH: join(dir, 'bin') };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs Envoy from envoy-bootstrap.json beside the config file, at the config's log level", () => {
    assert.deepEqual(envoyInPlaceOfConsulDataplane(['consul-dataplane', '-config-file', configFile], { env, execPath: self }), [
      'envoy',
      '-c',
      join(dir, 'consul', 'envoy-bootstrap.json'),
      '--disable-hot-restart',
      '--log-level',
      'debug',
    ]);
    assert.deepEqual(envoyInPlaceOfConsulDataplane(['consul-dataplane', `--config-file=${configFile}`], { env, execPath: self })?.slice(0, 3), [
      'envoy',
      '-c',
      join(dir, 'consul', 'envoy-bootstrap.json'),
    ]);
  });

  it('leaves every other command as it is: Envoy itself, or a consul-dataplane that is another program', () => {
    assert.equal(envoyInPlaceOfConsulDataplane(['envoy', '-c', '/consul/envoy-bootstrap.json'], { env, execPath: self }), undefined);
    const realDataplane = join(dir, 'real', 'consul-dataplane');
    mkdirSync(join(dir, 'real'));
    writeFileSync(realDataplane, '#!/bin/true\n');
    chmodSync(realDataplane, 0o755);
    assert.equal(
      envoyInPlaceOfConsulDataplane(['consul-dataplane', '-config-file', configFile], { env: { PATH: join(dir, 'real') }, execPath: self }),
      undefined,
    );
    assert.equal(
      envoyInPlaceOfConsulDataplane(['consul-dataplane', '-config-file', configFile], { env: { PATH: join(dir, 'none') }, execPath: self }),
      undefined,
    );
  });

  it('refuses a missing or relative -config-file, naming what it got', () => {
    for (const args of [[], ['-config-file', 'consul-dataplane.json']]) {
      assert.throws(
        () => envoyInPlaceOfConsulDataplane(['consul-dataplane', ...args], { env, execPath: self }),
        (e: unknown) => e instanceof ConsulEcsError && e.code === 'command-start-failed' && /-config-file/.test(e.message),
      );
    }
  });
});
