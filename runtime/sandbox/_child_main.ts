/**
 * Entry module of a sandbox child process (process isolation). Started by `_process_channel.ts` as
 * `deno run --no-config --no-npm --no-remote --v8-flags=--max-old-space-size=N [--allow-net=...] this-file
 * <rssLimitBytes> <watchdogIntervalMs>`. Speaks the slice protocol as newline-delimited JSON (stdin in, stdout
 * out), runs a watchdog Worker that reports an RSS over the limit on stderr (the host then kills the process,
 * even when this isolate is stuck in a loop) once a bundle is being loaded, and exits when stdin closes.
 *
 * Its imports must stay free of bare specifiers: the child runs without a config file or npm.
 */

import { checkAnswerSize, enableAsyncScope, startRuntime } from "../../slices/_runtime.ts";
import { closeSharedState, stdioAsLogLines } from "../../slices/_isolation.ts";
import type { HostMessage, RuntimeMessage } from "../../slices/host.ts";
import { LineSplitter } from "./_lines.ts";
import { cpuUsage } from "node:process";

const MEMORY_MARKER = "@@aether-memory-limit ";
/** The watchdog's report of the process's CPU time (ms, all threads), as _process_channel.ts reads it. */
const CPU_MARKER = "@@aether-cpu ";
/** How often the watchdog reports the CPU time (when it grew by at least a kernel tick since). */
const CPU_REPORT_MS = 50;
const [rssLimitArg, intervalArg] = Deno.args;
const rssLimitBytes = Number(rssLimitArg);
const intervalMs = Number(intervalArg) || 10;
const exitProcess = Deno.exit;
const stdout = Deno.stdout;
const encoder = new TextEncoder();

function writeAll(bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += stdout.writeSync(bytes.subarray(offset));
}

let queue: string[] = [];
function flush(): void {
  if (queue.length === 0) return;
  const text = queue.join("");
  queue = [];
  try {
    writeAll(encoder.encode(text));
  } catch {
    exitProcess(0); // The host closed the pipe: nobody is listening any more.
  }
}

function send(message: RuntimeMessage, maxBytes?: number): void {
  const line = JSON.stringify(message);
  if (line === undefined) throw new TypeError("message cannot be serialized as JSON");
  if (maxBytes !== undefined) checkAnswerSize(line, maxBytes);
  if (queue.length === 0) queueMicrotask(flush);
  queue.push(line + "\n");
}

/**
 * Starts the memory watchdog: a Worker has its own thread, so it keeps sampling while the slice's isolate is
 * busy or stuck. It boots with the process but samples only once armed: a warm child waiting in the pool
 * runs no slice code and needs no sampling (sampling every 10 ms costs an idle process about 1.5% of a core).
 * `arm` is called before the bundle is imported; once armed it never stops.
 */
function startWatchdog(): () => void {
  if (!(rssLimitBytes > 0)) return () => {};
  // The CPU time comes from here too: the node may not read /proc/<pid>/stat (Deno asks --allow-all for it),
  // and getrusage (process.cpuUsage) counts every thread of the process, the slice's included. A slice can
  // write lines that look like these to stderr, but the host keeps the largest value it has seen (CPU time
  // only grows): a forged line can only make its own sandbox look busier, never hide the real figure.
  const source = `
    import process from "node:process";
    const encoder = new TextEncoder();
    const marker = encoder.encode(${JSON.stringify("\n" + MEMORY_MARKER)});
    const write = (bytes) => {
      try {
        Deno.stderr.writeSync(bytes);
      } catch { /* the host is gone */ }
    };
    const sample = () => {
      const rss = Deno.memoryUsage().rss;
      if (rss > ${rssLimitBytes}) write(new Uint8Array([...marker, ...encoder.encode(rss + "\\n")]));
    };
    let reportedCpuMs = -Infinity;
    const reportCpu = () => {
      const usage = process.cpuUsage();
      const cpuMs = Math.floor((usage.user + usage.system) / 1000);
      if (cpuMs - reportedCpuMs < 10) return;
      reportedCpuMs = cpuMs;
      write(encoder.encode(${JSON.stringify("\n" + CPU_MARKER)} + cpuMs + "\\n"));
    };
    // The first timer of an isolate costs it 7-10 ms: pay that now, not when armed.
    clearTimeout(setTimeout(() => {}, 0));
    let armed = false;
    onmessage = () => {
      if (armed) return;
      armed = true;
      sample();
      setInterval(sample, ${intervalMs});
      reportCpu();
      setInterval(reportCpu, ${CPU_REPORT_MS});
    };`;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const watchdog = new Worker(url, { type: "module", name: "aether-memory-watchdog" });
  let armed = false;
  return () => {
    if (armed) return;
    armed = true;
    watchdog.postMessage("arm");
  };
}

/** Reads host messages from stdin: plain reads into one buffer (no stream machinery), one decode per chunk. */
async function readMessages(handler: (message: HostMessage) => void): Promise<void> {
  const read = Deno.stdin.read.bind(Deno.stdin); // taken before the bundle loads and could replace it
  const buffer = new Uint8Array(64 * 1024);
  const lines = new LineSplitter();
  const deliver = (line: string) => {
    try {
      handler(JSON.parse(line) as HostMessage);
    } catch {
      // Whatever one message does (the runtime answers every call itself), this loop must go on reading: a
      // child that stops reading looks alive but answers nothing (the host's liveness ping would replace it).
    }
  };
  while (true) {
    const n = await read(buffer);
    if (n === null) break;
    // No size limit here: the host decides what it sends, and this process's memory limit bounds the rest.
    lines.push(buffer.subarray(0, n), deliver, Infinity);
  }
  flush();
  exitProcess(0); // stdin closed: the host is gone or unloading us.
}

// Before any slice code: no storage or channel shared with other slices (all sandboxes share one origin).
closeSharedState();
// `Deno.stdout` is the protocol pipe (taken above as `stdout`): a slice's writes become log lines instead of
// lines that break the protocol, its stderr writes too (the host reads stderr for the watchdog's marker).
stdioAsLogLines(send);
const armWatchdog = startWatchdog();
// Booted: tell the host (an empty line, which the protocol skips), once the slow part of a fresh isolate is done.
enableAsyncScope().catch(() => {/* attribution stays synchronous */}).then(() => {
  try {
    writeAll(encoder.encode("\n"));
  } catch {
    exitProcess(0); // The host is gone.
  }
});
// Taken before any slice code runs, so a slice cannot replace what the pongs report.
const memoryUsage = Deno.memoryUsage;
startRuntime({
  send,
  usage() {
    const cpu = cpuUsage();
    return { cpuMs: (cpu.user + cpu.system) / 1000, rssBytes: memoryUsage().rss };
  },
  listen: (handler) =>
    void readMessages((message) => {
      if (message.t === "load") armWatchdog(); // before any of the slice's code runs
      handler(message);
    }),
  exit(code: number): never {
    flush();
    try {
      writeAll(encoder.encode(JSON.stringify({ t: "exit", code } satisfies RuntimeMessage) + "\n"));
    } catch {
      // The host is gone.
    }
    return exitProcess(code);
  },
});
