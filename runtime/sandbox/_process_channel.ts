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

const CHILD_MAIN = new URL("./_child_main.ts", import.meta.url);
/** What the watchdog writes to stderr when the RSS passes the limit (followed by the RSS in bytes). */
export const MEMORY_MARKER = "@@aether-memory-limit ";
const WATCHDOG_INTERVAL_MS = 10;
const MAX_LINE_CHARS = 256 * 1024 * 1024;
const STDERR_TAIL_CHARS = 4096;
/** Passed into the child when the node can read them, so Deno finds its module cache. */
const PASSED_ENV = ["DENO_DIR", "HOME", "XDG_CACHE_HOME", "NO_COLOR"];

export interface ProcessChannelOptions {
  name: string;
  grant: PermissionGrant;
  memoryLimitMb: number;
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
  const last = stderrTail.trim().split("\n").filter((l) => !l.startsWith(MEMORY_MARKER)).slice(-3).join(" | ");
  return {
    kind: "crash" as FailureKind,
    message: `the sandbox process exited unexpectedly (${how})${last ? `: ${last.slice(0, 400)}` : ""}`,
  };
}

export function openProcessChannel(options: ProcessChannelOptions, events: ChannelEvents): SandboxChannel {
  const { grant, memoryLimitMb } = options;
  const child = new Deno.Command(Deno.execPath(), {
    args: childArgs(grant, memoryLimitMb),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv(grant),
  }).spawn();
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let open = true;
  let exited = false;
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
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      let start = 0;
      let newline: number;
      while ((newline = buffer.indexOf("\n", start)) >= 0) {
        const line = buffer.slice(start, newline);
        start = newline + 1;
        if (line === "") continue;
        let message;
        try {
          message = JSON.parse(line);
        } catch {
          protocolError ??= `the sandbox wrote a line that is not a protocol message: ${line.slice(0, 120)}`;
          kill();
          continue;
        }
        if (open && protocolError === undefined) events.message(message);
      }
      buffer = buffer.slice(start);
      if (buffer.length > MAX_LINE_CHARS) {
        protocolError ??= "the sandbox wrote more than 256 MiB without a line break";
        kill();
        buffer = "";
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

  const finished = Promise.all([child.status, stdoutDone, stderrDone]).then(([status]) => {
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
  child.status.then(() => exited = true);

  let queue: string[] = [];
  const flush = () => {
    const text = queue.join("");
    queue = [];
    if (!exited) writer.write(encoder.encode(text)).catch(() => {/* the child is gone; `finished` reports it */});
  };

  return {
    send(message: HostMessage) {
      if (!open) return;
      const wire = message.t === "load" && message.bundle instanceof Uint8Array
        ? { ...message, bundle: new TextDecoder().decode(message.bundle) }
        : message;
      const line = JSON.stringify(wire);
      if (line === undefined) throw new TypeError("message cannot be serialized as JSON");
      if (queue.length === 0) queueMicrotask(flush);
      queue.push(line + "\n");
    },
    async close() {
      open = false;
      kill();
      await writer.close().catch(() => {/* the pipe may already be broken */});
      await finished;
    },
  };
}
