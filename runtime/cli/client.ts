/**
 * HTTP client for the management API. Problem documents become CliError with the server's own words; a node
 * that cannot be reached becomes a connection error (exit code 3).
 */

import { type TokenChoice, tokenHint } from "./credentials.ts";

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = "CliError";
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_CONNECTION = 3;

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** How the CLI chose the nodes it talks to (for the message when none answers). */
export interface ConnectSource {
  /** "--connect", "AETHER_CONNECT", "forge" (a .forge/forge.json) or "default". */
  kind: "--connect" | "AETHER_CONNECT" | "forge" | "default";
  /** The forge.json read, for kind "forge". */
  path?: string;
}

const CONNECT_HINT = "choose a node with --connect HOST:PORT or AETHER_CONNECT=HOST:PORT, or start a local " +
  'cluster with "aether forge"';

/**
 * Sends every request to the first node that accepts the connection: when one is down (connection refused),
 * the next is tried; the one that answered is tried first next time. A timeout is not retried elsewhere: the
 * request may have been applied.
 */
export class ApiClient {
  endpoints: string[];
  #current = 0;
  /** Trusts the cluster CA (--ca / AETHER_CA); absent: the system's roots. */
  #httpClient?: Deno.HttpClient;
  readonly #connect: string[];

  constructor(
    connect: string | string[],
    readonly timeoutMs = 30_000,
    readonly source: ConnectSource = { kind: "--connect" },
    /** The token sent as `Authorization: Bearer` (credentials.ts chooses it). */
    public token: TokenChoice = { source: "none" },
  ) {
    const list = typeof connect === "string" ? [connect] : connect;
    if (list.length === 0) throw new CliError("no node to connect to", EXIT_USAGE);
    this.#connect = list;
    this.endpoints = baseUrls(list, "http");
  }

  /**
   * Trusts the cluster CA (PEM) for HTTPS: a node whose certificate it did not sign is refused. Addresses given
   * without a scheme then mean https://.
   */
  trustCa(pem: string): void {
    this.#httpClient?.close();
    this.#httpClient = Deno.createHttpClient({ caCerts: [pem] });
    this.endpoints = baseUrls(this.#connect, "https");
  }

  /** The node the next request goes to first. */
  get baseUrl(): string {
    return this.endpoints[this.#current];
  }

  /**
   * fetch() against the cluster with failover between its nodes. `timeoutMs: null` waits without limit (for
   * streams; `signal` ends them).
   */
  async fetch(path: string, init: RequestInit & { timeoutMs?: number | null } = {}): Promise<Response> {
    const tried: string[] = [];
    for (let k = 0; k < this.endpoints.length; k++) {
      const index = (this.#current + k) % this.endpoints.length;
      const base = this.endpoints[index];
      const timeoutMs = init.timeoutMs === undefined ? this.timeoutMs : init.timeoutMs;
      const signals = [init.signal, timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs)]
        .filter((s): s is AbortSignal => s !== undefined && s !== null);
      const headers = new Headers(init.headers);
      if (this.token.token && !headers.has("authorization")) {
        headers.set("authorization", `Bearer ${this.token.token}`);
      }
      try {
        const response = await fetch(base + path, {
          ...init,
          headers,
          signal: AbortSignal.any(signals),
          ...(this.#httpClient ? { client: this.#httpClient } : {}),
        });
        this.#current = index;
        return response;
      } catch (e) {
        if (init.signal?.aborted) throw e;
        const error = e as Error;
        if (error.name === "TimeoutError") {
          throw new CliError(`cannot reach ${base}: no answer within ${timeoutMs} ms`, EXIT_CONNECTION);
        }
        tried.push(`${base} (${connectReason(error)})`);
        if (!isConnectFailure(error)) break;
      }
    }
    throw new CliError(`cannot reach ${tried.join(", ")}${this.#where()}; ${CONNECT_HINT}`, EXIT_CONNECTION);
  }

  #where(): string {
    switch (this.source.kind) {
      case "forge":
        return ` (the nodes of the Forge cluster in ${this.source.path})`;
      case "default":
        return " (the default: no --connect, no AETHER_CONNECT, no .forge/forge.json here or above)";
      case "AETHER_CONNECT":
        return " (from AETHER_CONNECT)";
      default:
        return "";
    }
  }

  async request(method: string, path: string, body?: BodyInit, headers?: HeadersInit): Promise<ApiResponse> {
    const response = await this.fetch(path, { method, body, headers });
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (!response.ok) throw new CliError(this.describeFailure(response, bytes));
    return { status: response.status, headers: response.headers, body: bytes };
  }

  async json<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const init = body === undefined ? undefined : JSON.stringify(body);
    const headers = body === undefined ? undefined : { "content-type": "application/json" };
    const response = await this.request(method, path, init, headers);
    return JSON.parse(new TextDecoder().decode(response.body)) as T;
  }

  /** Opens a Server-Sent Events stream and yields each event until the server ends it or `signal` aborts. */
  async *events(
    path: string,
    signal?: AbortSignal,
  ): AsyncGenerator<{ event: string; id?: string; data: string }> {
    let response: Response;
    try {
      response = await this.fetch(path, {
        headers: { accept: "text/event-stream" },
        signal,
        timeoutMs: null,
      });
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    }
    if (!response.ok || !response.body) {
      throw new CliError(this.describeFailure(response, new Uint8Array(await response.arrayBuffer())));
    }
    const lines = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = "message", id: string | undefined, data: string[] = [];
    try {
      while (true) {
        const { value, done } = await lines.read();
        if (done) return;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            if (data.length > 0) yield { event, id, data: data.join("\n") };
            event = "message", id = undefined, data = [];
          } else if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("id:")) id = line.slice(3).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
      }
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    } finally {
      lines.releaseLock();
      await response.body.cancel().catch(() => {});
    }
  }

  /** The server's problem in its own words; after a 401, how to supply a token. */
  describeFailure(response: Response, bytes: Uint8Array): string {
    const text = describeFailure(response, bytes);
    return response.status === 401 ? `${text}\n${tokenHint(this.token)}` : text;
  }
}

function baseUrls(connect: string[], scheme: "http" | "https"): string[] {
  return connect.map((c) => (/^https?:\/\//.test(c) ? c.replace(/\/$/, "") : `${scheme}://${c}`));
}

function describeFailure(response: Response, bytes: Uint8Array): string {
  const text = new TextDecoder().decode(bytes);
  try {
    const problem = JSON.parse(text);
    if (problem && typeof problem.detail === "string") {
      return `${response.status} ${problem.title}: ${problem.detail}`;
    }
  } catch {
    // Not a problem document: report the raw text.
  }
  return `${response.status} ${response.statusText}${text ? `: ${text.slice(0, 500)}` : ""}`;
}

/** Whether the request never reached the node (so another node may be asked safely). */
function isConnectFailure(e: Error): boolean {
  const text = `${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`;
  return e instanceof TypeError && /connect|refused|unreachable|dns error|os error 111/i.test(text);
}

function connectReason(e: Error): string {
  const cause = (e.cause as Error | undefined)?.message;
  const text = cause ?? e.message;
  if (/connection refused/i.test(text)) return "connection refused";
  if (/dns error|failed to lookup/i.test(text)) return "unknown host";
  if (/timed out/i.test(text)) return "connection timed out";
  if (/certificate|UnknownIssuer|tls|handshake/i.test(text)) {
    return `TLS: ${text.replace(/^error sending request for url \([^)]*\): /, "")} (trust the cluster CA ` +
      "with --ca FILE or AETHER_CA=FILE)";
  }
  return text.replace(/^error sending request for url \([^)]*\): /, "");
}
