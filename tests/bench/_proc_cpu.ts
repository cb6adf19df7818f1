/** CPU time of processes from Linux /proc, for benchmarks that report CPU per request or per call. */

/** utime + stime (fields 14 and 15) of a /proc `stat` file, in clock ticks. */
function statTicks(path: string): number {
  const stat = Deno.readTextFileSync(path);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * CPU seconds (user + system, every thread) used so far by `pid` and, unless `own`, every process below it.
 * A process that is gone counts as zero.
 */
export function cpuSeconds(pid: number, own = false): number {
  let ticks = 0;
  const visit = (p: number) => {
    try {
      ticks += statTicks(`/proc/${p}/stat`);
      if (own) return;
      for (const task of Deno.readDirSync(`/proc/${p}/task`)) {
        const children = Deno.readTextFileSync(`/proc/${p}/task/${task.name}/children`).trim();
        if (children) { for (const child of children.split(/\s+/)) visit(Number(child)); }
      }
    } catch {
      // Gone meanwhile.
    }
  };
  visit(pid);
  return ticks / 100;
}

/**
 * CPU seconds (user + system) used so far by one thread of `pid`; by default its main thread, whose id is the
 * process id. A thread that is gone counts as zero.
 */
export function threadCpuSeconds(pid: number, tid = pid): number {
  try {
    return statTicks(`/proc/${pid}/task/${tid}/stat`) / 100;
  } catch {
    return 0;
  }
}
