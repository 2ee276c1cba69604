// The executable's copy into the bootstrap dir: under a temporary name until it
// is installed, and nothing left behind once it is discarded.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ExecutableCopy, readElfLoading } from '@consul-ecs-ts/sea';
import { ELF_INTERPRETER_OFFSET, elfFile } from '../helpers/elf-file.ts';

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
      assert.match(err.message, /check that bootstrapDir \S+ exists and that uid \d+ can write to it/);
      return true;
    });
    await copy.discard();
  });

  describe('with its loader and libraries beside it', () => {
    // An executable built as packages/sea builds it: it looks for its libraries in
    // $ORIGIN/.consul-ecs-lib, with room in its loader path. This process's loader and C
    // library are what get copied (it has them mapped).
    const loader = readElfLoading(process.execPath)!.interpreter!.path;
    const portable = () =>
      writeFile(source, elfFile({ interpreter: loader, interpreterSize: 256, needed: [['libc.so.6', 1]], runpath: ['$ORIGIN/.consul-ecs-lib', 20] }), {
        mode: 0o700,
      });
    const loaderName = loader.slice(loader.lastIndexOf('/') + 1);

    it('copies them, and points the copy at its loader there', async () => {
      await portable();
      await mkdir(bootstrapDir());
      const copy = ExecutableCopy.start(source, bootstrapDir());
      await copy.install();
      assert.deepEqual(await listing(), ['.consul-ecs-lib', 'consul-ecs']);
      assert.deepEqual((await readdir(join(bootstrapDir(), '.consul-ecs-lib'))).sort(), [loaderName, 'libc.so.6'].sort());
      const field = (await readFile(copy.path)).subarray(ELF_INTERPRETER_OFFSET, ELF_INTERPRETER_OFFSET + 256);
      assert.equal(field.toString('latin1', 0, field.indexOf(0)), join(bootstrapDir(), '.consul-ecs-lib', loaderName));
      assert.equal((await stat(copy.path)).mode & 0o777, 0o755);
    });

    it('discard removes them with the copy, installed or not; a discarded copy is not installed', async () => {
      await portable();
      await mkdir(bootstrapDir());
      const pending = ExecutableCopy.start(source, bootstrapDir());
      await pending.discard();
      assert.deepEqual(await listing(), []);
      await assert.rejects(pending.install(), /the copy was discarded/);

      const installed = ExecutableCopy.start(source, bootstrapDir());
      await installed.install();
      await installed.discard();
      assert.deepEqual(await listing(), []);
    });
  });
});
