/** Collects what a command writes, for assertions (and for checking that no secret is printed). */
export function captureOutput(): { stdout: (t: string) => void; stderr: (t: string) => void; out: () => string; err: () => string; all: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
    },
    out: () => out,
    err: () => err,
    all: () => out + err,
  };
}
