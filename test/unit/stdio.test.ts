import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { stdioWriter } from '../../packages/control-plane/src/stdio.ts';

/** A stream that keeps what is written to it, and counts how often it was asked for. */
function keepingStream() {
  const chunks: string[] = [];
  let asked = 0;
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { get: () => (asked++, stream), text: () => chunks.join(''), asked: () => asked };
}

describe('stdioWriter', () => {
  it('writes each text whole to the file descriptor, and never makes the stream', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'consul-ecs-stdio-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'out');
    const fd = openSync(file, 'w');
    const stream = keepingStream();
    const write = stdioWriter(fd, stream.get);
    const long = 'x'.repeat(200_000);
    write('first line\n');
    write('ünïcödé ✓\n');
    write(`${long}\n`);
    closeSync(fd);
    assert.equal(readFileSync(file, 'utf8'), `first line\nünïcödé ✓\n${long}\n`);
    assert.equal(stream.asked(), 0);
  });

  it('hands the text to the stream when the descriptor refuses it, and everything after it too, in order', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'consul-ecs-stdio-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'read-only');
    writeFileSync(file, '');
    const fd = openSync(file, 'r'); // writes fail: EBADF
    t.after(() => closeSync(fd));
    const stream = keepingStream();
    const write = stdioWriter(fd, stream.get);
    write('one\n');
    write('two\n');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stream.text(), 'one\ntwo\n');
    assert.equal(readFileSync(file, 'utf8'), '');
  });
});
