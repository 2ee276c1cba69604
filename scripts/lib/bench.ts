// What the benchmarks share: GNU time for a child's peak RSS, and the median.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/** GNU time: run a command as `GNU_TIME -f %M <argv…>` and its stderr ends with the peak RSS in kB. */
export const GNU_TIME = '/usr/bin/time';

/** Throws, saying what to install, when GNU time is missing. */
export function requireGnuTime(): void {
  if (!existsSync(GNU_TIME)) throw new Error('GNU time is needed for peak RSS: apt-get install time');
}

/**
 * The file and arguments that run `argv`: as they are, or under GNU time (`peakRss`),
 * whose stderr then ends with the peak RSS ({@link peakRssKb}). GNU time delays what it
 * runs by a few ms, and not the same for every contender, so a run that is timed is
 * not one under it.
 */
export function commandLine(argv: readonly string[], opts: { peakRss: boolean }): [string, string[]] {
  return opts.peakRss ? [GNU_TIME, ['-f', '%M', ...argv]] : [argv[0]!, argv.slice(1)];
}

/** The peak RSS in kB that `GNU_TIME -f %M` printed last on the stderr of its run. */
export function peakRssKb(stderr: unknown): number {
  return Number(/(\d+)\s*$/.exec(String(stderr))?.[1]);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** ours / theirs to two decimals, or "n/a" when there is nothing to divide by (a CPU figure of 0 over a short window). */
export function ratio(ours: number, theirs: number): string {
  const r = ours / theirs;
  return Number.isFinite(r) ? r.toFixed(2) : 'n/a';
}

/**
 * The anchor (hashicorp/consul-ecs) a benchmark measures against, from its command line:
 * none with `--no-anchor`, the binary `--anchor=PATH` names, or else the one in the
 * peers cache, built there first if need be (scripts/peers.sh anchor).
 */
export async function anchorBinary(argv: readonly string[] = process.argv): Promise<string> {
  if (argv.includes('--no-anchor')) return '';
  const given = argv.find((a) => a.startsWith('--anchor='))?.slice('--anchor='.length);
  if (given) return given;
  const peers = fileURLToPath(new URL('../peers.sh', import.meta.url));
  const r = await execa('bash', [peers, 'anchor'], { reject: false, stderr: 'inherit' });
  if (r.exitCode !== 0) {
    throw new Error('cannot build the anchor (scripts/peers.sh anchor, above); give its binary with --anchor=PATH, or pass --no-anchor to measure ours alone');
  }
  return r.stdout.trim();
}
