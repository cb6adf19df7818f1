/**
 * Process isolation: the sandbox is a child Deno process (`_child_main.ts`) started with only the grant's
 * `--allow-*` flags, no config file, no npm and no remote modules, and a V8 heap limit. Messages are
 * newline-delimited JSON: host → child on stdin, child → host on stdout. Inside the child a tiny watchdog
 * Worker samples the process RSS and writes a marker line to stderr when it passes the limit; the host kills
 * the child on that line. The V8 heap limit alone is not enough: ArrayBuffer memory lives outside the heap.
 */

import type { ChannelEvents, FailureKind, SandboxChannel } from "./_channel.ts";
import { type PermissionGrant, processPermissionFlags } from "./policy.ts";
import type { HostMessage } from "../../slices/protocol.ts";
import { LineSplitter, MAX_MESSAGE_CHARS } from "./_lines.ts";

export { MAX_MESSAGE_CHARS } from "./_lines.ts";

const CHILD_MAIN = new URL("./_child_main.ts", import.meta.url);
/** What the watchdog writes to stderr when the RSS passes the limit (followed by the RSS in bytes). */
export const MEMORY_MARKER = "@@aether-memory-limit ";
const WATCHDOG_INTERVAL_MS = 10;
const STDERR_TAIL_CHARS = 4096;
/** Passed into the child when the node can read them, so Deno finds its module cache. */
const PASSED_ENV = ["DENO_DIR", "HOME", "XDG_CACHE_HOME", "NO_COLOR"];

export interface ProcessChannelOptions {
  name: string;
  grant: PermissionGrant;
  memoryLimitMb: number;
  /** Where to take an already started child from; without one a child is spawned. */
  pool?: ProcessPool;
}

/** A started sandbox child that has not been given a slice yet. */
export interface SpawnedChild {
  readonly child: Deno.ChildProcess;
  /** Set when the process has ended. */
  exited: boolean;
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
  const spawned: SpawnedChild = { child, exited: false };
  child.status.then(() => {
    spawned.exited = true;
  });
  return spawned;
}

/** Kills a child nobody reads from yet and releases its streams. */
export async function discard(spawned: SpawnedChild): Promise<void> {
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

/**
 * Keeps one started child per recently used grant (and memory limit), so that loading an instance does not
 * wait for a Deno process to boot: the next instance with the same grant takes the warm child and a new one
 * is started behind it. A warm child has loaded nothing and is identical to a fresh one.
 */
export class ProcessPool {
  readonly #warm = new Map<string, SpawnedChild>();
  readonly #discarding = new Set<Promise<void>>();
  readonly #maxKinds: number;
  #closed = false;

  /** `maxKinds`: how many different grants keep a warm child (the oldest is dropped). */
  constructor(maxKinds = 4) {
    this.#maxKinds = maxKinds;
  }

  /** A started child for this grant: a warm one if there is one, else a new one. Starts its successor. */
  take(grant: PermissionGrant, memoryLimitMb: number): SpawnedChild {
    const key = JSON.stringify([grant.net, grant.env, memoryLimitMb]);
    let spawned = this.#warm.get(key);
    this.#warm.delete(key);
    if (spawned?.exited) {
      this.#discard(spawned);
      spawned = undefined;
    }
    spawned ??= spawnChild(grant, memoryLimitMb);
    if (!this.#closed) {
      while (this.#warm.size >= this.#maxKinds) {
        const [oldest, child] = this.#warm.entries().next().value!;
        this.#warm.delete(oldest);
        this.#discard(child);
      }
      this.#warm.set(key, spawnChild(grant, memoryLimitMb));
    }
    return spawned;
  }

  /** Process ids of the warm children waiting. */
  warmPids(): number[] {
    return [...this.#warm.values()].map((s) => s.child.pid);
  }

  #discard(spawned: SpawnedChild): void {
    const done = discard(spawned).finally(() => this.#discarding.delete(done));
    this.#discarding.add(done);
  }

  /** Ends every warm child. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const spawned of this.#warm.values()) this.#discard(spawned);
    this.#warm.clear();
    await Promise.all([...this.#discarding]);
  }
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
  const spawned = options.pool?.take(grant, memoryLimitMb) ?? spawnChild(grant, memoryLimitMb);
  const child = spawned.child;
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let open = true;
  let exited = spawned.exited;
  let memoryRssBytes = 0;
  let stderrTail = "";
  let protocolError: string | undefined;

  const kill = () => {
    if (exited) return;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };

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
        protocolError ??= `the sandbox sent a message larger than ${MAX_MESSAGE_CHARS / 2 ** 20} Mi characters`;
        kill();
      }
    }
  })();

  const stderrDone = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderrTail = (stderrTail + decoder.decode(chunk, { stream: true })).slice(-STDERR_TAIL_CHARS);
      const at = stderrTail.lastIndexOf(MEMORY_MARKER);
      if (at >= 0 && memoryRssBytes === 0) {
        memoryRssBytes = Number.parseInt(stderrTail.slice(at + MEMORY_MARKER.length), 10) || 1;
        kill();
      }
    }
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

  // Messages wait for the end of the event loop turn (setImmediate, after the I/O that is ready has been
  // handled) and go out in one write: under load the HTTP server hands over one request per task, and one
  // write per request costs both processes a system call and the child a wakeup each. While a write is in
  // progress, further messages gather for the next one.
  let queue: string[] = [];
  let scheduled = false;
  let writing = false;
  const flush = () => {
    scheduled = false;
    if (writing || queue.length === 0) return;
    const text = queue.length === 1 ? queue[0] : queue.join("");
    queue = [];
    if (exited) return;
    writing = true;
    writer.write(encoder.encode(text)).then(
      () => {
        writing = false;
        if (queue.length > 0) flush();
      },
      () => {/* the child is gone; `finished` reports it */},
    );
  };

  return {
    pid: child.pid,
    send(message: HostMessage) {
      if (!open) return;
      const wire = message.t === "load" && message.bundle instanceof Uint8Array
        ? { ...message, bundle: new TextDecoder().decode(message.bundle) }
        : message;
      const line = JSON.stringify(wire);
      if (line === undefined) throw new TypeError("message cannot be serialized as JSON");
      queue.push(line + "\n");
      if (!scheduled && !writing) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    async close() {
      open = false;
      kill();
      await writer.close().catch(() => {/* the pipe may already be broken */});
      await finished;
    },
  };
}
