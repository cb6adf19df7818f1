/**
 * Worker isolation: the sandbox is a Web Worker in the node process whose `deno.permissions` are the grant.
 * The Worker's entry module is the SDK's runtime (`slices/_worker_main.ts`); the bundle itself is imported
 * from a blob: URL inside the Worker with a computed specifier, so every import it makes is checked against
 * the Worker's permissions (proven by the hostile-slice tests). Needs `--unstable-worker-options`.
 */

import type { ChannelEvents, SandboxChannel } from "./_channel.ts";
import { type PermissionGrant, workerPermissions } from "./policy.ts";
import type { HostMessage, RuntimeMessage } from "../../slices/protocol.ts";
import { FlushScheduler } from "./_flush.ts";

const WORKER_MAIN = new URL("../../slices/_worker_main.ts", import.meta.url);

export function openWorkerChannel(
  name: string,
  grant: PermissionGrant,
  events: ChannelEvents,
): SandboxChannel {
  const worker = new Worker(WORKER_MAIN, {
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
  // Messages travel in batches (see _flush.ts): a postMessage costs far more than its contents.
  let queue: HostMessage[] = [];
  const flush = () => {
    const batch = queue;
    queue = [];
    if (!open || batch.length === 0) return;
    try {
      worker.postMessage(batch.length === 1 ? batch[0] : batch);
    } catch {
      for (const message of batch) {
        try {
          worker.postMessage(message);
        } catch (e) {
          events.undeliverable(message, e as Error);
        }
      }
    }
  };
  const flusher = new FlushScheduler(flush);
  const receive = (message: RuntimeMessage) => {
    if (message?.t === "done") flusher.answered();
    events.message(message);
  };
  worker.onmessage = (event: MessageEvent<RuntimeMessage | RuntimeMessage[]>) => {
    if (!open) return;
    const data = event.data;
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
      queue.push(message);
      flusher.queued(message.t === "call" || message.t === "hook");
    },
    close() {
      open = false;
      worker.terminate();
      return Promise.resolve();
    },
  };
}
