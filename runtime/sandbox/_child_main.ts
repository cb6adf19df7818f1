/**
 * Entry module of a sandbox child process (process isolation). Started by `_process_channel.ts` as
 * `deno run --no-config --no-npm --no-remote --v8-flags=--max-old-space-size=N [--allow-net=...] this-file
 * <rssLimitBytes> <watchdogIntervalMs>`. Speaks the slice protocol as newline-delimited JSON (stdin in, stdout
 * out), runs a watchdog Worker that reports an RSS over the limit on stderr (the host then kills the process,
 * even when this isolate is stuck in a loop), and exits when stdin closes.
 *
 * Its imports must stay free of bare specifiers: the child runs without a config file or npm.
 */

import { startRuntime } from "../../slices/_runtime.ts";
import type { HostMessage, RuntimeMessage } from "../../slices/protocol.ts";
import { LineSplitter } from "./_lines.ts";

const MEMORY_MARKER = "@@aether-memory-limit ";
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

function send(message: RuntimeMessage): void {
  const line = JSON.stringify(message);
  if (line === undefined) throw new TypeError("message cannot be serialized as JSON");
  if (queue.length === 0) queueMicrotask(flush);
  queue.push(line + "\n");
}

function startWatchdog(): void {
  if (!(rssLimitBytes > 0)) return;
  // A Worker has its own thread, so it keeps sampling while the slice's isolate is busy or stuck.
  const source = `
    const marker = new TextEncoder().encode(${JSON.stringify("\n" + MEMORY_MARKER)});
    setInterval(() => {
      const rss = Deno.memoryUsage().rss;
      if (rss > ${rssLimitBytes}) {
        try {
          Deno.stderr.writeSync(new Uint8Array([...marker, ...new TextEncoder().encode(rss + "\\n")]));
        } catch { /* the host is gone */ }
      }
    }, ${intervalMs});`;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  new Worker(url, { type: "module", name: "aether-memory-watchdog" });
}

/** Reads host messages from stdin: plain reads into one buffer (no stream machinery), one decode per chunk. */
async function readMessages(handler: (message: HostMessage) => void): Promise<void> {
  const read = Deno.stdin.read.bind(Deno.stdin); // taken before the bundle loads and could replace it
  const buffer = new Uint8Array(64 * 1024);
  const lines = new LineSplitter();
  const deliver = (line: string) => handler(JSON.parse(line) as HostMessage);
  while (true) {
    const n = await read(buffer);
    if (n === null) break;
    if (!lines.push(buffer.subarray(0, n), deliver)) throw new Error("the host sent an oversized message");
  }
  flush();
  exitProcess(0); // stdin closed: the host is gone or unloading us.
}

startWatchdog();
startRuntime({
  send,
  listen: (handler) => void readMessages(handler),
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
