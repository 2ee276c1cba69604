// The executable's code caches: V8 bytecode of the functions each short-lived
// command runs, made at build time so that a task's containers do not compile
// them at every start. Node.js's own SEA code cache holds only the top level of
// the entry script, so the loader compiles the bundle with the cache of its
// command (loader.ts), made here: each command that has a cache (the CLI's
// command table says which) runs once in a process of its own, against stand-ins
// on loopback (the testkit's ECS agent simulator and Consul stand-in),
// with the pinned runtime and the executable's V8 flags, and saves what it
// compiled (train-loader.ts).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ConsulStandIn, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { cacheAsset, EXEC_ARGV, TRAIN_BUNDLE_ENV, TRAIN_CACHE_ENV } from './assets.js';

const run = promisify(execFile);

/** What a training run of a command needs: its arguments and environment, and runs to make first (not saved). */
interface Training {
  argv: string[];
  env?: Record<string, string>;
  before?: Array<{ argv: string[]; env?: Record<string, string> }>;
}

export interface TrainOptions {
  /** The pinned Node.js runtime the executable embeds. */
  node: string;
  /** Put before `node`: the emulator that runs it when it is another architecture's ([] when the machine runs it). */
  runner?: readonly string[];
  /** The CLI bundle. */
  bundle: string;
  /** The compiled train-loader.cjs. */
  trainLoader: string;
  /** The commands whose caches to make (the CLI's table says which have one). */
  commands: readonly string[];
  /** Where the caches go, named by cacheAsset(). */
  outDir: string;
}

/** Makes the code cache of each command in `commands`; returns the files, by asset name. */
export async function trainCodeCaches(opts: TrainOptions): Promise<Record<string, string>> {
  const work = mkdtempSync(join(tmpdir(), 'consul-ecs-train-'));
  // The stand-in Consul checks the login's bearer token and logs in as the role it names.
  const consul = await new ConsulStandIn().start();
  const sim = await trainingTask().start();
  consul.registerNode(sim.clusterArn);
  try {
    const trainings = scenarios(new URL(consul.address).host, work);
    const caches: Record<string, string> = {};
    for (const command of opts.commands) {
      const training = trainings[command];
      if (!training)
        throw new Error(`sea: no training run for ${command}, which the command table says has a code cache; add one to packages/sea/src/train.ts`);
      for (const before of training.before ?? []) await runCommand(opts, sim, before, join(work, 'discarded.cache'));
      const file = join(opts.outDir, cacheAsset(command));
      await runCommand(opts, sim, training, file);
      caches[cacheAsset(command)] = file;
    }
    return caches;
  } finally {
    await sim.stop();
    await consul.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

async function runCommand(opts: TrainOptions, sim: EcsAgentSimulator, t: Training, cacheFile: string): Promise<void> {
  try {
    const [cmd, ...args] = [...(opts.runner ?? []), opts.node, ...EXEC_ARGV, opts.trainLoader, ...t.argv];
    await run(cmd!, args, {
      // No PATH: nothing a command might run (iptables) can be found.
      env: { PATH: '/nonexistent', ...sim.containerEnv(), ...t.env, [TRAIN_BUNDLE_ENV]: opts.bundle, [TRAIN_CACHE_ENV]: cacheFile },
      // Under emulation a run takes some seconds.
      timeout: opts.runner?.length ? 300_000 : 60_000,
    });
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    throw new Error(`sea: the training run "consul-ecs ${t.argv.join(' ')}" failed (exit ${String(e.code)}):\n${e.stdout ?? ''}${e.stderr ?? ''}`, {
      cause: err,
    });
  }
}

function scenarios(consulAddr: string, work: string): Record<string, Training> {
  const config = {
    bootstrapDir: join(work, 'bootstrap'),
    consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: Number(consulAddr.split(':')[1]) }, grpc: { port: 8503 } },
    consulLogin: { enabled: true },
    service: { name: 'web', port: 8080 },
    proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
    healthSyncContainers: ['app'],
    transparentProxy: { enabled: false },
  };
  mkdirSync(config.bootstrapDir);
  const executable = join(work, 'executable');
  writeFileSync(executable, '#!/bin/sh\n');
  const sink = join(work, 'token');
  const login = ['login', '-http-addr', `http://${consulAddr}`, '-token-sink-file', sink];
  return {
    version: { argv: ['version'] },
    login: { argv: login },
    logout: { before: [{ argv: login }], argv: ['logout', '-http-addr', `http://${consulAddr}`, '-token-file', sink] },
    'mesh-init': { argv: ['mesh-init'], env: { CONSUL_ECS_CONFIG_JSON: JSON.stringify(config), CONSUL_ECS_EXECUTABLE: executable } },
    'net-dial': { argv: ['net-dial', consulAddr] },
  };
}

/** The task the training runs are in: its credentials are made up, and no AWS is asked (the stand-in Consul checks the request's shape only). */
function trainingTask(): EcsAgentSimulator {
  return new EcsAgentSimulator({
    family: 'web',
    containers: [
      { name: 'app', hasHealthCheck: true, health: 'HEALTHY' },
      { name: 'consul-dataplane', hasHealthCheck: true, health: 'HEALTHY' },
    ],
    credentials: async () => ({
      AccessKeyId: 'AKIDTRAINING',
      SecretAccessKey: 'training-secret',
      Token: 'training-session-token',
      Expiration: new Date(Date.now() + 3600_000).toISOString(),
      RoleArn: 'arn:aws:iam::123456789012:role/consul-ecs/web',
    }),
  });
}
