/**
 * Worker isolation: the sandbox is a Web Worker in the node process whose `deno.permissions` are the grant.
 * The Worker's entry module is the SDK's runtime (`slices/_worker_main.ts`); the bundle itself is imported
 * from a blob: URL inside the Worker with a computed specifier, so every import it makes is checked against
 * the Worker's permissions (proven by the hostile-slice tests). Needs `--unstable-worker-options`.
 */

import type { ChannelEvents, SandboxChannel } from "./_channel.ts";
import { type PermissionGrant, workerPermissions } from "./policy.ts";
import type { RuntimeMessage } from "../../slices/host.ts";
import { FlushScheduler } from "./_flush.ts";
import { MAX_MESSAGE_CHARS } from "./_lines.ts";

const WORKER_MAIN = new URL("../../slices/_worker_main.ts", import.meta.url);

/**
 * The Web Worker constructor, taken when this module loads. Libraries the node loads later may replace the
 * global: onnxruntime-web's Emscripten glue sets `globalThis.Worker` to `node:worker_threads`' Worker once a
 * session is created (the controller's forecaster, on the leader), which ignores `deno.permissions` and
 * speaks another protocol: slice Workers started through it hung in LOADING, and would have had the node's
 * permissions.
 */
const WebWorker: typeof Worker = globalThis.Worker;

export function openWorkerChannel(
  name: string,
  grant: PermissionGrant,
  events: ChannelEvents,
): SandboxChannel {
  const worker = new WebWorker(WORKER_MAIN, {
    type: "module",
    name,
    deno: { permissions: workerPermissions(grant) },
  } as WorkerOptions);
  let open = true;
  const end = (kind: "crash" | "protocol", message: string) => {
    if (!open) return;
    open = false;
    worker.terminate();
    events.ended(kind, message);
  };
  // Messages travel in batches (see _flush.ts): a postMessage costs far more than its contents. A batch is
  // JSON text, not objects: JSON.stringify plus JSON.parse of a call message cost about three quarters of
  // its structured clone (tests/bench/request_path_bench.ts), and cloning a string is a copy. Every field is
  // JSON anyway (process isolation carries the same messages as JSON lines), so both isolations see the same
  // values. A `load` goes as an object: its bundle is bytes.
  let queue: string[] = [];
  const flush = () => {
    if (!open || queue.length === 0) return;
    const batch = queue.length === 1 ? queue[0] : `[${queue.join(",")}]`;
    queue = [];
    worker.postMessage(batch);
  };
  const flusher = new FlushScheduler(flush);
  const receive = (message: RuntimeMessage) => {
    if (message?.t === "done") flusher.answered();
    events.message(message);
  };
  worker.onmessage = (event: MessageEvent<string>) => {
    if (!open) return;
    // The runtime keeps answers within `limits.maxResponseBytes`; a batch this large comes from a sandbox that
    // bypassed it. Refused before it is parsed (which would cost the node as much again, in objects).
    if (typeof event.data === "string" && event.data.length > MAX_MESSAGE_CHARS) {
      return end(
        "protocol",
        `the worker sent a message larger than ${MAX_MESSAGE_CHARS / 2 ** 20} Mi characters`,
      );
    }
    let data: RuntimeMessage | RuntimeMessage[];
    try {
      data = JSON.parse(event.data);
    } catch {
      return end(
        "protocol",
        `the worker sent a message that is not protocol JSON: ${String(event.data).slice(0, 120)}`,
      );
    }
    if (!Array.isArray(data)) return receive(data);
    for (const message of data) if (open) receive(message);
  };
  worker.onerror = (event: ErrorEvent) => {
    // Unhandled, a Worker error propagates to the node's global scope and ends the process.
    event.preventDefault();
    end("crash", `the worker crashed: ${event.message}`);
  };
  worker.onmessageerror = () => end("protocol", "the worker sent a message that could not be deserialized");
  return {
    send(message) {
      if (!open) return;
      if (message.t === "load") {
        flush(); // keeps the order
        try {
          worker.postMessage(message);
        } catch (e) {
          events.undeliverable(message, e as Error);
        }
        return;
      }
      const text = JSON.stringify(message);
      if (text === undefined) throw new TypeError("message cannot be serialized as JSON");
      queue.push(text);
      flusher.queued(message.t === "call" || message.t === "hook");
    },
    close() {
      open = false;
      worker.terminate();
      return Promise.resolve();
    },
  };
}
