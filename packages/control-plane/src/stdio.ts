import { writeSync } from 'node:fs';

/**
 * A writer for standard output or error that writes to the file descriptor
 * itself. `process.stdout` and `process.stderr` are made at their first use, and
 * for a pipe (how a container runtime collects a container's output) that is a
 * `net.Socket` with its handle and stream state: ~1 ms of a short command's start
 * before its first log line. Node.js writes to stdio pipes and files
 * synchronously anyway, so the order of lines is the same either way.
 *
 * A descriptor that cannot take the text now (a non-blocking pipe that is full:
 * EAGAIN) or at all (EPIPE, EBADF) hands that text and everything after it to the
 * stream, which queues it or reports the error as it always has.
 */
export function stdioWriter(fd: number, stream: () => NodeJS.WritableStream): (text: string) => void {
  let direct = true;
  return (text) => {
    if (direct) {
      const bytes = Buffer.from(text);
      let written = 0;
      try {
        while (written < bytes.length) written += writeSync(fd, bytes, written);
        return;
      } catch {
        direct = false;
        stream().write(bytes.subarray(written));
        return;
      }
    }
    stream().write(text);
  };
}
