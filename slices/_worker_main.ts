/**
 * Entry module of a slice Worker (worker isolation). The host creates the Worker from this file with the
 * slice's permissions; the bundle arrives in the `load` message and is imported from a blob: URL, so all of
 * the bundle's own imports are checked against the Worker's permissions.
 */

import { startRuntime } from "./_runtime.ts";
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

startRuntime({
  send: (message: RuntimeMessage) => post(message),
  listen: (handler) => scope.addEventListener("message", (event) => handler(event.data as HostMessage)),
  exit(code: number): never {
    post({ t: "exit", code } satisfies RuntimeMessage);
    close();
    // close() stops the event loop after this task; make sure the slice's code after exit() never runs.
    throw new Error(`slice called Deno.exit(${code})`);
  },
});
