/**
 * Process isolation: a sandbox's CPU share over a sliding window, from the CPU time its process used (all
 * threads), as the sandbox's watchdog reports it (`_process_channel.ts`: a node may not read /proc/<pid>).
 * A slice that keeps a core busy answers every liveness ping (it yields between its slices of work), so only
 * its CPU time finds it out. Worker isolation has no per-Worker count (a Worker is a thread of the node), so
 * it is not watched. `processCpuMs` reads /proc directly, for tests and benches that run with -A.
 */

/**
 * USER_HZ, the unit of the times in `/proc/<pid>/stat`: 100 on every Linux architecture Deno runs on (the
 * kernel exports its times in this unit whatever its internal tick rate).
 */
const CLOCK_TICKS_PER_SECOND = 100;

/** The CPU time (user + system) process `pid` has used so far, in milliseconds; undefined when unreadable. */
export function processCpuMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined; // Not Linux, or the process is gone.
  }
  // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so fields count from its last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

interface Sample {
  atMs: number;
  cpuMs: number;
}

/**
 * CPU samples of one process over the last `windowMs`. `add` answers the share of one core used over the
 * whole window (1 = one core busy all the time), once the samples span it. At most one sample older than the
 * window is kept, so the samples are bounded by the window over the sampling interval.
 */
export class CpuWindow {
  readonly windowMs: number;
  #samples: Sample[] = [];

  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }

  add(atMs: number, cpuMs: number): number | undefined {
    const samples = this.#samples;
    samples.push({ atMs, cpuMs });
    while (samples.length >= 2 && atMs - samples[1].atMs >= this.windowMs) samples.shift();
    const first = samples[0];
    const spanMs = atMs - first.atMs;
    if (spanMs < this.windowMs || spanMs <= 0) return undefined;
    return (cpuMs - first.cpuMs) / spanMs;
  }

  get size(): number {
    return this.#samples.length;
  }
}
