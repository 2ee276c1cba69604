// The executable's copy into the bootstrap dir: under a temporary name until it
// is installed, and nothing left behind once it is discarded.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ExecutableCopy } from '@consul-ecs-ts/core/executable-copy';

describe('ExecutableCopy', () => {
  let dir: string;
  let source: string;
  const content = Buffer.from('#!/bin/sh\necho consul-ecs\n'.repeat(1000));

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'executable-copy-'));
    source = join(dir, 'source');
    await writeFile(source, content, { mode: 0o700 });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const bootstrapDir = () => join(dir, 'bootstrap');
  const listing = () => readdir(bootstrapDir());

  it('installs the copy as <bootstrapDir>/consul-ecs, mode 0755, and leaves no temporary file', async () => {
    await mkdir(bootstrapDir());
    const copy = ExecutableCopy.start(source, bootstrapDir());
    assert.equal(copy.path, join(bootstrapDir(), 'consul-ecs'));
    assert.equal(copy.source, source);
    await copy.install();
    assert.deepEqual(await listing(), ['consul-ecs']);
    assert.deepEqual(await readFile(copy.path), content);
    assert.equal((await stat(copy.path)).mode & 0o777, 0o755);
  });

  it('replaces a temporary file a crashed run left under the same process id', async () => {
    await mkdir(bootstrapDir());
    await writeFile(join(bootstrapDir(), `consul-ecs.tmp-${process.pid}`), 'partial');
    const copy = ExecutableCopy.start(source, bootstrapDir());
    await copy.install();
    assert.deepEqual(await listing(), ['consul-ecs']);
    assert.deepEqual(await readFile(copy.path), content);
  });

  it('discard removes the copy, whether or not it was installed', async () => {
    await mkdir(bootstrapDir());
    const pending = ExecutableCopy.start(source, bootstrapDir());
    await pending.discard();
    assert.deepEqual(await listing(), []);

    const installed = ExecutableCopy.start(source, bootstrapDir());
    await installed.install();
    await installed.discard();
    assert.deepEqual(await listing(), []);
  });

  it('install fails naming the source, the destination and what to check; discard then succeeds', async () => {
    const copy = ExecutableCopy.start(source, bootstrapDir()); // the directory does not exist
    await assert.rejects(copy.install(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'file-write-failed');
      assert.match(err.message, new RegExp(`cannot copy the consul-ecs executable ${source} to ${join(bootstrapDir(), 'consul-ecs')}: .*ENOENT`));
      assert.match(err.message, /check that bootstrapDir exists and is writable/);
      return true;
    });
    await copy.discard();
  });
});
