// undici's HTTP parser (llhttp, a WebAssembly module), compiled ahead by the
// executable. undici compiles the parser when its first connection opens, on the
// main thread: ~1 ms to decode the module and ~2.5 ms to compile its functions
// on their first call, in the critical path of every short command. For login,
// logout and mesh-init the executable's loader (scripts/lib/sea-code-cache.mjs)
// compiles the same bytes on V8's background threads while the command starts,
// and leaves the module here. The CLI bundle's copy of undici hands its first
// connection over once that compile has settled (an edit of client.js) and then
// takes the module (an edit of client-h1.js, both in tsup.config.ts); it compiles
// its own when there is none: outside the executable, for the other commands,
// and if the loader's compile failed.

/** The registered symbol's key under which the loader leaves the module (the loader is not part of the bundle). */
export const LLHTTP_MODULE_KEY = 'consul-ecs.llhttp-simd-module';

/** The loader's compile: settles (never rejects) once the module is here, or failed. */
const compiling = () => (globalThis as Record<symbol, unknown>)[Symbol.for(`${LLHTTP_MODULE_KEY}.compiling`)] as Promise<void> | undefined;

/** Whether the loader is compiling the parser (or compiled it), with WebAssembly tiering off. */
export function llhttpPrecompiling(): boolean {
  return compiling() !== undefined;
}

/** The compiled SIMD parser the loader left, if it did. */
export function precompiledLlhttp(): object | undefined {
  const module: unknown = (globalThis as Record<symbol, unknown>)[Symbol.for(LLHTTP_MODULE_KEY)];
  return typeof module === 'object' && module !== null ? module : undefined;
}

type Connector = (opts: object, callback: (err: Error | null, socket: unknown) => void) => void;

/**
 * undici's connector (an edit of client.js), made to hand a new connection to
 * undici only once the loader's compile has settled: undici takes the parser when
 * its first connection opens, and would otherwise compile its own beside the
 * loader's. The connection itself opens at once.
 */
export function afterPrecompiledLlhttp(connector: Connector): Connector {
  const pending = compiling();
  if (!pending) return connector;
  return (opts, callback) => connector(opts, (err, socket) => void pending.then(() => callback(err, socket)));
}
