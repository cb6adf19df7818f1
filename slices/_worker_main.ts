/**
 * Entry module of a slice Worker (worker isolation). The host creates the Worker from this file with the
 * slice's permissions; the bundle arrives in the `load` message and is imported from a blob: URL, so all of
 * the bundle's own imports are checked against the Worker's permissions.
 */

import { startRuntime, undeliverable } from "./_runtime.ts";
import type { HostMessage, RuntimeMessage } from "./protocol.ts";

interface WorkerScope {
  postMessage(message: unknown): void;
  close(): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
}

const scope = globalThis as unknown as WorkerScope;
// Taken before the bundle loads, so a slice that replaces these globals cannot silence the runtime.
const post = scope.postMessage.bind(scope);
const close = scope.close.bind(scope);

let deliver: (message: HostMessage) => void = () => {};
let queue: RuntimeMessage[] = [];

function flush(): void {
  const batch = queue;
  queue = [];
  try {
    post(batch.length === 1 ? batch[0] : batch);
  } catch {
    for (const message of batch) {
      try {
        post(message);
      } catch (e) {
        undeliverable(message, e as Error, post, deliver);
      }
    }
  }
}

startRuntime({
  // Messages of one task travel as one batch: a postMessage costs far more than its contents.
  send(message: RuntimeMessage) {
    if (queue.length === 0) queueMicrotask(flush);
    queue.push(message);
  },
  listen(handler) {
    deliver = handler;
    scope.addEventListener("message", (event) => {
      const data = event.data as HostMessage | HostMessage[];
      if (!Array.isArray(data)) return handler(data);
      for (const message of data) handler(message);
    });
  },
  exit(code: number): never {
    flush();
    post({ t: "exit", code } satisfies RuntimeMessage);
    close();
    // close() stops the event loop after this task; make sure the slice's code after exit() never runs.
    throw new Error(`slice called Deno.exit(${code})`);
  },
});
