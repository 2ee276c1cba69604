// The linux/arm64 self-contained executable (packages/cli/dist/sea/consul-ecs-arm64,
// built by `npm run build:arm64`, which `npm test` runs) on this machine under
// qemu-user: its commands, with the code caches the arm64 runtime made, against the
// same real peers as the x64 one (Consul, moto, the ECS agent simulator), and
// mesh-init's copy of it with the arm64 loader and libraries beside it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, before, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import type { AgentService } from '@consul-ecs-ts/core';
import type { EcsAgentSimulator as Sim } from '@consul-ecs-ts/core/testkit';
import { readElfLoading } from '@consul-ecs-ts/sea';
import { freePorts } from '../../scripts/lib/local-stack.ts';
import { LoginStack } from '../helpers/login-stack.ts';
import { meshConfig, meshEnv, readDataplaneConfig } from '../helpers/mesh-task.ts';

const SEA_ARM64 = fileURLToPath(new URL('../../packages/cli/dist/sea/consul-ecs-arm64', import.meta.url));
const SYSROOT = process.env.CONSUL_ECS_ARM64_SYSROOT || '/usr/aarch64-linux-gnu';
const EM_AARCH64 = 183;

/** qemu-user's arm64 emulator, or a message saying what to install. */
function findQemu(): string {
  const qemu = [process.env.QEMU_AARCH64, 'qemu-aarch64', 'qemu-aarch64-static'].find((q) => !!q && spawnSync(q, ['--version']).status === 0);
  if (!qemu || !existsSync(join(SYSROOT, 'lib/ld-linux-aarch64.so.1')))
    throw new Error(
      `the arm64 tests run the executable under qemu-user: install qemu-user, libc6-arm64-cross and libstdc++6-arm64-cross (as .ci/run does), or set QEMU_AARCH64 and CONSUL_ECS_ARM64_SYSROOT`,
    );
  // An absolute path: the commands run with no PATH.
  return qemu.includes('/') ? qemu : spawnSync('sh', ['-c', 'command -v "$0"', qemu], { encoding: 'utf8' }).stdout.trim();
}

/** The ELF machine of a file (e_machine). */
const elfMachine = (file: string) => readFileSync(file).readUInt16LE(18);

describe('the linux/arm64 self-contained executable, under qemu-user', () => {
  /** The emulator; none on an arm64 machine. */
  let qemu: string | undefined;
  /** Runs an arm64 program: under the emulator with the arm64 C and C++ libraries of SYSROOT (as an arm64 machine's /lib) unless told not to use them. */
  const arm64 = ([file, ...args]: string[], env: Record<string, string>, opts: { sysroot?: boolean } = {}) =>
    execa(qemu ?? file!, qemu ? [...(opts.sysroot === false ? [] : ['-L', SYSROOT]), file!, ...args] : args, {
      env: { PATH: '/nonexistent', ...env },
      extendEnv: false,
      reject: false,
      timeout: 120_000,
    });

  before(() => {
    // Not skipped: `npm test` builds it, and CI installs the emulator.
    if (!existsSync(SEA_ARM64)) throw new Error(`${SEA_ARM64} is missing: build it with npm run build:arm64 (npm test does)`);
    if (process.arch !== 'arm64') qemu = findQemu();
  });

  it('is an arm64 executable that runs version with its code cache, and net-dial to an open and a closed port', async () => {
    assert.equal(elfMachine(SEA_ARM64), EM_AARCH64);
    assert.equal(readElfLoading(SEA_ARM64)?.interpreter?.path.replace(/\/(\.\/)*\/?(\.\/)*/g, '/'), '/lib/ld-linux-aarch64.so.1');
    const version = await arm64([SEA_ARM64, 'version'], { CONSUL_ECS_CODE_CACHE_CHECK: '1' });
    assert.equal(version.exitCode, 0, String(version.stderr));
    assert.match(String(version.stdout), /^consul-ecs v\d+\.\d+\.\d+ \(TypeScript, node 24\./);
    assert.match(String(version.stderr), /code cache version: accepted/);

    // The caches are made on qemu's default CPU (all features): V8 takes them on the CPUs of
    // Graviton (1: Cortex-A72) and Graviton2 (Neoverse N1) too.
    if (qemu) {
      for (const cpu of ['cortex-a72', 'neoverse-n1']) {
        const on = await arm64([SEA_ARM64, 'version'], { CONSUL_ECS_CODE_CACHE_CHECK: '1', QEMU_CPU: cpu });
        assert.equal(on.exitCode, 0, `${cpu}: ${String(on.stderr)}`);
        assert.match(String(on.stderr), /code cache version: accepted/, cpu);
      }
    }

    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const open = (server.address() as AddressInfo).port;
      const [closed] = await freePorts(1);
      const dial = await arm64([SEA_ARM64, 'net-dial', `127.0.0.1:${open}`], { CONSUL_ECS_CODE_CACHE_CHECK: '1' });
      assert.equal(dial.exitCode, 0, String(dial.stderr));
      assert.match(String(dial.stderr), /code cache net-dial: accepted/);
      const refused = await arm64([SEA_ARM64, 'net-dial', `127.0.0.1:${closed}`], {});
      assert.equal(refused.exitCode, 2, String(refused.stderr));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  describe('against Consul, moto and the simulated task', () => {
    let stack: LoginStack;
    let sim: Sim;
    let dir: string;
    beforeEach(async () => {
      stack = await LoginStack.start();
      sim = await stack.webTask();
      dir = await mkdtemp(join(tmpdir(), 'bootstrap-arm64-'));
    });
    afterEach(async () => {
      await stack.dispose();
      await rm(dir, { recursive: true, force: true });
    });

    it('logs in and out', async () => {
      await stack.assertLogsInAndOut((args) => arm64([SEA_ARM64, ...args], sim.containerEnv()));
    });

    it('runs mesh-init and copies itself with the arm64 loader and libraries, and the copy runs on them alone', async () => {
      const env = meshEnv(sim, meshConfig(stack, dir));
      delete env.CONSUL_ECS_EXECUTABLE;
      const res = await arm64([SEA_ARM64, 'mesh-init'], env);
      stack.outputs.push(String(res.stderr));
      assert.equal(res.exitCode, 0, String(res.stderr));
      // Under qemu-user the process's own path is the arm64 executable's, not the emulator's.
      assert.match(String(res.stderr), new RegExp(`copied binary: source=${SEA_ARM64.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

      const id = `web-${sim.taskId}`;
      const services = await stack.nodeServices(sim.clusterArn);
      assert.deepEqual(services.map((s: AgentService) => s.ID).sort(), [id, `${id}-sidecar-proxy`]);
      await stack.readToken(join(dir, 'service-token'));
      const dp = await readDataplaneConfig(dir);
      assert.deepEqual(dp.proxy, { nodeName: sim.clusterArn, id: `${id}-sidecar-proxy`, namespace: '', partition: '' });
      stack.secrets.add(dp.consul.credentials.login.bearerToken);

      const copy = join(dir, 'consul-ecs');
      assert.equal((await stat(copy)).size, (await stat(SEA_ARM64)).size);
      assert.equal((await stat(copy)).mode & 0o777, 0o755);
      const libs = join(dir, '.consul-ecs-lib');
      assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp')).concat((await readdir(libs)).filter((f) => f.includes('.tmp'))), []);
      // /proc/self/maps under qemu-user lists the guest's mappings: the arm64 libraries, not the emulator's x86-64 ones.
      for (const lib of ['ld-linux-aarch64.so.1', 'libc.so.6', 'libstdc++.so.6', 'libgcc_s.so.1']) {
        assert.equal((await stat(join(libs, lib))).mode & 0o777, 0o755, lib);
        assert.equal(elfMachine(join(libs, lib)), EM_AARCH64, `${lib} is an arm64 library`);
      }
      assert.equal(readElfLoading(copy)?.interpreter?.path, join(libs, 'ld-linux-aarch64.so.1'));

      // With no sysroot: an arm64 library from anywhere but the copy's own directory
      // would be this machine's x86-64 one, and the copy would not start.
      const version = await arm64([copy, 'version'], {}, { sysroot: false });
      assert.equal(version.exitCode, 0, String(version.stderr));
      assert.match(String(version.stdout), /^consul-ecs v\d+\.\d+\.\d+/);
      const dial = await arm64([copy, 'net-dial', `127.0.0.1:${stack.consul.ports.http}`], {}, { sysroot: false });
      assert.equal(dial.exitCode, 0, String(dial.stderr));
      stack.assertNoSecretsPrinted();
    });
  });
});
