/**
 * The pieces of _invoke_layers.ts's Aether-free layers, shared with the Workers of its `threads` layer: what
 * the HTTP contract makes any handler touch of Deno's request and response, and the cheapest hop to a Worker
 * (an echo, reached through a Worker or a MessagePort).
 */

/** What the HTTP contract makes any handler read of the request (the values themselves are not used). */
export function readContract(request: Request): unknown[] {
  const headers = request.headers;
  return [
    request.url,
    request.method,
    headers.get("x-request-id"),
    headers.get("traceparent"),
    headers.get("x-aether-timeout-ms"),
  ];
}

/** What the HTTP contract makes any handler write: the value as JSON, plus the request id header. */
export function contractResponse(value: unknown): Response {
  const response = Response.json(value);
  response.headers.set("x-request-id", "0123456789abcdef");
  return response;
}

interface Message {
  id: number;
  value: unknown;
}

/** Something an echo answers on: a Worker running `ECHO_SOURCE`, or a MessagePort to one. */
type EchoChannel = Pick<Worker, "postMessage"> & { onmessage: ((event: MessageEvent) => void) | null };

/** An echo Worker's code: answers every message on itself, and on every MessagePort it is sent. */
export const ECHO_SOURCE = `onmessage = (e) => {
  if (e.data instanceof MessagePort) e.data.onmessage = (m) => e.data.postMessage(m.data);
  else postMessage(e.data);
};`;

export function startEcho(): Worker {
  return new Worker(URL.createObjectURL(new Blob([ECHO_SOURCE], { type: "text/javascript" })), {
    type: "module",
  });
}

/** Round trips through an echo, answered with the value it sent back. */
export class EchoHop {
  readonly #channel: EchoChannel;
  readonly #waiting = new Map<number, (value: unknown) => void>();
  #next = 0;
  #batch: Message[] = [];

  constructor(channel: EchoChannel) {
    this.#channel = channel;
    channel.onmessage = (e) => {
      for (const message of Array.isArray(e.data) ? e.data as Message[] : [e.data as Message]) {
        const done = this.#waiting.get(message.id)!;
        this.#waiting.delete(message.id);
        done(message.value);
      }
    };
  }

  /** One message per round trip. */
  one(respond: (value: unknown) => Response): Promise<Response> {
    return new Promise((resolve) => {
      const id = this.#next++;
      this.#waiting.set(id, (value) => resolve(respond(value)));
      this.#channel.postMessage({ id, value: { message: "hello" } });
    });
  }

  /** The requests of one event loop turn in one message, as the sandbox channels send them. */
  batched(respond: (value: unknown) => Response): Promise<Response> {
    return new Promise((resolve) => {
      const id = this.#next++;
      this.#waiting.set(id, (value) => resolve(respond(value)));
      if (this.#batch.length === 0) setImmediate(this.#send);
      this.#batch.push({ id, value: { message: "hello" } });
    });
  }

  readonly #send = () => {
    this.#channel.postMessage(this.#batch);
    this.#batch = [];
  };
}
