/**
 * Worker isolation: the sandbox is a Web Worker in the node process whose `deno.permissions` are the grant.
 * The Worker's entry module is the SDK's runtime (`slices/_worker_main.ts`); the bundle itself is imported
 * from a blob: URL inside the Worker with a computed specifier, so every import it makes is checked against
 * the Worker's permissions (proven by the hostile-slice tests). Needs `--unstable-worker-options`.
 */

import type { ChannelEvents, SandboxChannel } from "./_channel.ts";
import { type PermissionGrant, workerPermissions } from "./policy.ts";
import type { HostMessage, RuntimeMessage } from "../../slices/protocol.ts";

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
  worker.onmessage = (event: MessageEvent<RuntimeMessage | RuntimeMessage[]>) => {
    if (!open) return;
    if (!Array.isArray(event.data)) return events.message(event.data);
    for (const message of event.data) if (open) events.message(message);
  };
  worker.onerror = (event: ErrorEvent) => {
    // Unhandled, a Worker error propagates to the node's global scope and ends the process.
    event.preventDefault();
    end("crash", `the worker crashed: ${event.message}`);
  };
  worker.onmessageerror = () => end("protocol", "the worker sent a message that could not be deserialized");
  // Messages travel in batches: a postMessage costs far more than its contents. A batch closes at the end
  // of the event loop turn (setImmediate, after the I/O that is ready has been handled), so that under load
  // the HTTP requests of one turn, which the server hands over one task each, share one message.
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
  return {
    send(message) {
      if (!open) return;
      if (queue.length === 0) setImmediate(flush);
      queue.push(message);
    },
    close() {
      open = false;
      worker.terminate();
      return Promise.resolve();
    },
  };
}
