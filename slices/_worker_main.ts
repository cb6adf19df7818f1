/**
 * Entry module of a slice Worker (worker isolation). The host creates the Worker from this file with the
 * slice's permissions; the bundle arrives in the `load` message and is imported from a blob: URL, so all of
 * the bundle's own imports are checked against the Worker's permissions.
 */

import { closeSync } from "node:fs";
import { checkAnswerSize, startRuntime } from "./_runtime.ts";
import { closeNestedWorkers, closeSharedState, stdioAsLogLines } from "./_isolation.ts";
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

/** Messages of this task, each already JSON text. */
let queue: string[] = [];

function flush(): void {
  if (queue.length === 0) return;
  const batch = queue.length === 1 ? queue[0] : `[${queue.join(",")}]`;
  queue = [];
  post(batch);
}

// Before any slice code: no storage or channel shared with other slices, no nested Workers (they would share
// the node's memory without bound), and no way onto the node's stdio.
closeSharedState();
closeNestedWorkers();

// Messages of one task travel as one batch of JSON text (see the host side, _worker_channel.ts, for why
// JSON): a postMessage costs far more than its contents. A message JSON cannot carry throws here, at once,
// like in process isolation, and the runtime answers for it.
function send(message: RuntimeMessage, maxBytes?: number): void {
  const text = JSON.stringify(message);
  if (text === undefined) throw new TypeError("message cannot be serialized as JSON");
  if (maxBytes !== undefined) checkAnswerSize(text, maxBytes);
  if (queue.length === 0) queueMicrotask(flush);
  queue.push(text);
}

// A Worker shares the node's stdin, stdout and stderr: its own handles and descriptors close (the node's stay
// open), its writes become log lines.
stdioAsLogLines(send, closeSync);

startRuntime({
  send,
  listen(handler) {
    scope.addEventListener("message", (event) => {
      // JSON text (one message or an array of them); a `load` arrives as an object, its bundle as bytes.
      const data = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
      if (!Array.isArray(data)) return handler(data as HostMessage);
      for (const message of data as HostMessage[]) handler(message);
    });
  },
  exit(code: number): never {
    flush();
    post(JSON.stringify({ t: "exit", code } satisfies RuntimeMessage));
    close();
    // close() stops the event loop after this task; make sure the slice's code after exit() never runs.
    throw new Error(`slice called Deno.exit(${code})`);
  },
});
