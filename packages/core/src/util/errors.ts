/**
 * Errors raised by this library. Every message says what failed, with which
 * input, and what to do about it. Messages never carry credentials, bearer
 * tokens or ACL tokens: callers pass only non-secret context in.
 */
export class ConsulEcsError extends Error {
  /** A stable, machine-readable reason, e.g. `consul-login-refused`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConsulEcsError';
    this.code = code;
  }
}

/**
 * The message of any thrown value, for wrapping into a clearer error. Our own
 * errors already say everything; a foreign error gets its cause appended.
 */
export function describeError(err: unknown): string {
  if (err instanceof ConsulEcsError) return `${err.message} (${err.code})`;
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = (err as { code?: unknown }).code;
    let text = err.message;
    if (typeof code === 'string' && !text.includes(code)) text = `${text} (${code})`;
    if (cause instanceof Error && cause.message && !text.includes(cause.message)) {
      text = `${text}: ${describeError(cause)}`;
    }
    return text;
  }
  return String(err);
}

/**
 * What to check when a directory refused a write: that it exists and that this
 * process's user (by uid, as task definitions name users) may write to it.
 */
export function writableDirHint(dir: string): string {
  const user = typeof process.getuid === 'function' ? `uid ${process.getuid()}` : 'this user';
  return `check that ${dir} exists and that ${user} can write to it`;
}

/**
 * Why a long-running loop was stopped, for its log line: the abort reason's own
 * words (the CLI aborts with "received SIGTERM" or "received SIGINT"), else
 * "stop requested" (a plain `abort()`).
 */
export function stopReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (typeof reason === 'string' && reason) return reason;
  if (reason instanceof Error && reason.name !== 'AbortError' && reason.message) return reason.message;
  return 'stop requested';
}
