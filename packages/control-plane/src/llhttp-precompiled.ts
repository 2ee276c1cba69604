// undici's HTTP parser (llhttp, a WebAssembly module), compiled ahead by the
// executable. undici compiles the parser when its first connection opens, on the
// main thread: ~1 ms to decode the module and ~2.5 ms to compile its functions
// on their first call, in the critical path of every short command. For login
// and logout the executable's loader (scripts/lib/sea-code-cache.mjs) compiles
// the same bytes on V8's background threads while it reads the command's code
// cache, and leaves the module here. The CLI bundle's copy of undici takes it (an
// edit of undici's client-h1.js in tsup.config.ts) and compiles its own when
// there is none: outside the executable, and for the other commands. (mesh-init
// gained nothing from it, measured: there the executable's copy into the
// bootstrap dir keeps the second CPU busy, and the loader waited for the compile.)

/** The registered symbol's key under which the loader leaves the module (the loader is not part of the bundle). */
export const LLHTTP_MODULE_KEY = 'consul-ecs.llhttp-simd-module';

/** The compiled SIMD parser the loader left, if it did. */
export function precompiledLlhttp(): object | undefined {
  const module: unknown = (globalThis as Record<symbol, unknown>)[Symbol.for(LLHTTP_MODULE_KEY)];
  return typeof module === 'object' && module !== null ? module : undefined;
}
