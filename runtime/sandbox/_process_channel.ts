/**
 * Process isolation: the sandbox is a child Deno process (`_child_main.ts`) started with only the grant's
 * `--allow-*` flags, no config file, no npm and no remote modules, and a V8 heap limit. Messages are
 * newline-delimited JSON (`_lines.ts`): host → child on stdin, child → host on stdout, in batches
 * (`_flush.ts`). A child writes an empty line once it has booted (the warm pool waits for it; the protocol
 * skips empty lines). Inside the child a tiny watchdog Worker samples the process RSS once a bundle is being
 * loaded and writes a marker line to stderr when it passes the limit; the host kills the child on that line.
 * The V8 heap limit alone is not enough: ArrayBuffer memory lives outside the heap. The watchdog also reports
 * the process's CPU time on stderr (`cpuMs()`, for the host's CPU limits): the node cannot read /proc/<pid>.
 */

import type { ChannelEvents, FailureKind, SandboxChannel } from "./_channel.ts";
import { type PermissionGrant, processPermissionFlags } from "./policy.ts";
import type { HostMessage } from "../../slices/host.ts";
import { FlushScheduler } from "./_flush.ts";
import { LineSplitter, MAX_MESSAGE_CHARS } from "./_lines.ts";

export { MAX_MESSAGE_CHARS } from "./_lines.ts";

const CHILD_MAIN = new URL("./_child_main.ts", import.meta.url);
/** What the watchdog writes to stderr when the RSS passes the limit (followed by the RSS in bytes). */
export const MEMORY_MARKER = "@@aether-memory-limit ";
/** What the watchdog writes to stderr every 50 ms while the process computes: its CPU time so far, in ms. */
export const CPU_MARKER = "@@aether-cpu ";
const WATCHDOG_INTERVAL_MS = 10;
const STDERR_TAIL_CHARS = 4096;
/** Passed into the child when the node can read them, so Deno finds its module cache. */
const PASSED_ENV = ["DENO_DIR", "HOME", "XDG_CACHE_HOME", "NO_COLOR"];

export interface ProcessChannelOptions {
  name: string;
  grant: PermissionGrant;
  memoryLimitMb: number;
  /** An already started child for this grant (from the warm pool); without one a child is spawned. */
  spawned?: SpawnedChild;
}

/** A started sandbox child that has not been given a slice yet. */
export interface SpawnedChild {
  readonly child: Deno.ChildProcess;
  /** Set when the process has ended. */
  exited: boolean;
  /** Resolves once the child has booted (it writes an empty line), has ended, or was released. */
  readonly ready: Promise<void>;
  /** Stops watching for the ready line, so a channel can read standard output. */
  release(): void;
}

export function spawnChild(grant: PermissionGrant, memoryLimitMb: number): SpawnedChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: childArgs(grant, memoryLimitMb),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv(grant),
  }).spawn();
  // The child writes an empty line once it has booted; a pending read is cancelled by `release()` (the line,
  // if it comes later, is an empty line the channel skips).
  const reader = child.stdout.getReader();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    reader.releaseLock();
  };
  const ready = reader.read().then(() => {}, () => {}).finally(release);
  const spawned: SpawnedChild = { child, exited: false, ready, release };
  child.status.then(() => {
    spawned.exited = true;
  });
  return spawned;
}

/** Kills a child nobody reads from yet and releases its streams. */
export async function discard(spawned: SpawnedChild): Promise<void> {
  spawned.release();
  try {
    spawned.child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await spawned.child.status;
  await Promise.all([
    spawned.child.stdout.cancel().catch(() => {}),
    spawned.child.stderr.cancel().catch(() => {}),
    spawned.child.stdin.close().catch(() => {}),
  ]);
}

/** The command line (after the deno executable) of a sandbox child. */
export function childArgs(grant: PermissionGrant, memoryLimitMb: number): string[] {
  return [
    "run",
    "--quiet",
    "--no-config",
    "--no-lock",
    "--no-npm",
    "--no-remote",
    "--no-prompt",
    `--v8-flags=--max-old-space-size=${memoryLimitMb}`,
    ...processPermissionFlags(grant),
    CHILD_MAIN.href,
    String(memoryLimitMb * 1024 * 1024),
    String(WATCHDOG_INTERVAL_MS),
  ];
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // The node was not granted this variable: the child simply does not get it.
  }
}

function childEnv(grant: PermissionGrant): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...PASSED_ENV, ...grant.env]) {
    const value = readEnv(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

function describeExit(status: Deno.CommandStatus, stderrTail: string, memoryLimitMb: number) {
  if (/out of memory|heap limit|Reached heap limit/i.test(stderrTail) || status.signal === "SIGTRAP") {
    return {
      kind: "memory" as FailureKind,
      message: `the sandbox process ran out of V8 heap (limit ${memoryLimitMb} MiB) and was ended by V8`,
    };
  }
  const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
  const last = stderrTail.trim().split("\n").filter((l) => !l.startsWith(MEMORY_MARKER)).slice(-3).join(
    " | ",
  );
  return {
    kind: "crash" as FailureKind,
    message: `the sandbox process exited unexpectedly (${how})${last ? `: ${last.slice(0, 400)}` : ""}`,
  };
}

export function openProcessChannel(options: ProcessChannelOptions, events: ChannelEvents): SandboxChannel {
  const { grant, memoryLimitMb } = options;
  const spawned = options.spawned ?? spawnChild(grant, memoryLimitMb);
  spawned.release();
  const child = spawned.child;
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let open = true;
  let exited = spawned.exited;
  let memoryRssBytes = 0;
  let stderrTail = "";
  const cpu = new CpuReports();
  let protocolError: string | undefined;

  const kill = () => {
    if (exited) return;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };

  // Messages travel in batches (see _flush.ts), one write each: a write costs both processes a system call
  // and the child a wakeup. While a write is in progress, further messages gather for the next one.
  let queue: string[] = [];
  let writing = false;
  const flush = () => {
    if (writing || queue.length === 0) return;
    const text = queue.length === 1 ? queue[0] : queue.join("");
    queue = [];
    if (exited) return;
    writing = true;
    writer.write(encoder.encode(text)).then(
      () => {
        writing = false;
        if (queue.length > 0) flusher.again();
      },
      () => {/* the child is gone; `finished` reports it */},
    );
  };
  const flusher = new FlushScheduler(flush);

  const stdoutDone = (async () => {
    const reader = child.stdout.getReader();
    const lines = new LineSplitter();
    const deliver = (line: string) => {
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        protocolError ??= `the sandbox wrote a line that is not a protocol message: ${line.slice(0, 120)}`;
        kill();
        return;
      }
      if (open && protocolError === undefined) {
        try {
          if (message?.t === "done") flusher.answered();
          events.message(message);
        } catch (e) {
          protocolError ??= `a message from the sandbox could not be handled: ${(e as Error).message}`;
          kill();
        }
      }
    };
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      if (!lines.push(value, deliver)) {
        protocolError ??= `the sandbox sent a message larger than ${
          MAX_MESSAGE_CHARS / 2 ** 20
        } Mi characters`;
        kill();
      }
    }
  })();

  const stderrDone = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      const text = cpu.take(decoder.decode(chunk, { stream: true }));
      stderrTail = (stderrTail + text).slice(-STDERR_TAIL_CHARS);
      const at = stderrTail.lastIndexOf(MEMORY_MARKER);
      if (at >= 0 && memoryRssBytes === 0) {
        memoryRssBytes = Number.parseInt(stderrTail.slice(at + MEMORY_MARKER.length), 10) || 1;
        kill();
      }
    }
    stderrTail = (stderrTail + cpu.rest()).slice(-STDERR_TAIL_CHARS);
  })();

  // The pumps end when the child's streams close; a read error there is the child going away.
  const pumped = (p: Promise<void>) => p.catch(() => {});
  const finished = Promise.all([child.status, pumped(stdoutDone), pumped(stderrDone)]).then(([status]) => {
    exited = true;
    if (!open) return;
    open = false;
    if (protocolError) return events.ended("protocol", protocolError);
    if (memoryRssBytes > 0) {
      return events.ended(
        "memory",
        `the sandbox process passed its memory limit of ${memoryLimitMb} MiB ` +
          `(resident ${Math.round(memoryRssBytes / 2 ** 20)} MiB) and was killed`,
      );
    }
    const { kind, message } = describeExit(status, stderrTail, memoryLimitMb);
    events.ended(kind, message);
  });
  child.status.then(() => {
    exited = true;
  });

  return {
    pid: child.pid,
    cpuMs: () => cpu.cpuMs,
    send(message: HostMessage) {
      if (!open) return;
      const wire = message.t === "load" && message.bundle instanceof Uint8Array
        ? { ...message, bundle: new TextDecoder().decode(message.bundle) }
        : message;
      const line = JSON.stringify(wire);
      if (line === undefined) throw new TypeError("message cannot be serialized as JSON");
      queue.push(line + "\n");
      flusher.queued(message.t === "call" || message.t === "hook");
    },
    async close() {
      open = false;
      kill();
      await writer.close().catch(() => {/* the pipe may already be broken */});
      await finished;
    },
  };
}

/**
 * The watchdog's CPU reports, taken out of the child's stderr line by line (the other lines go on to the
 * stderr tail). A slice may write lookalike lines: the largest value wins, since CPU time only grows, so a
 * forged line can make its own sandbox look busier but never hide what it used.
 */
class CpuReports {
  /** The CPU time the process has used, as last reported (undefined before the first report). */
  cpuMs: number | undefined;
  /** The unfinished last line of the stream, bounded like the tail. */
  #partial = "";

  /** Records the reports among the complete lines of `text`; answers the other complete lines. */
  take(text: string): string {
    const lines = (this.#partial + text).split("\n");
    this.#partial = lines.pop()!.slice(-STDERR_TAIL_CHARS);
    let rest = "";
    for (const line of lines) {
      const at = line.lastIndexOf(CPU_MARKER);
      if (at < 0) {
        rest += line + "\n";
        continue;
      }
      const value = Number(line.slice(at + CPU_MARKER.length));
      if (Number.isFinite(value) && value >= 0 && (this.cpuMs === undefined || value > this.cpuMs)) {
        this.cpuMs = value;
      }
    }
    return rest;
  }

  /** The unfinished last line, once the stream has ended (a crash's last words may lack a newline). */
  rest(): string {
    const partial = this.#partial;
    this.#partial = "";
    return partial;
  }
}
