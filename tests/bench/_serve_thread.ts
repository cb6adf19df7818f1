/**
 * Worker module of _invoke_layers.ts's `threads` layer: one thread of an HTTP server whose port several Workers
 * share (`reusePort`: the kernel spreads the connections among them). Each request is the `ceiling` layer's:
 * the contract's reads, the batched hop to the echo Worker behind the MessagePort it was given, the contract's
 * response. Posts `{port}` once it listens.
 */

import { contractResponse, EchoHop, readContract } from "./_contract.ts";

interface Start {
  /** 0 for the first thread; the others join its port. */
  port: number;
  /** A port to the echo Worker. */
  echo: MessagePort;
}

const scope = globalThis as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent<Start>) => void) | null;
};

scope.onmessage = (event) => {
  const hop = new EchoHop(event.data.echo);
  Deno.serve({
    hostname: "127.0.0.1",
    port: event.data.port,
    reusePort: true,
    onListen: (addr) => scope.postMessage({ port: addr.port }),
  }, (request) => {
    readContract(request);
    return hop.batched(contractResponse);
  });
};
