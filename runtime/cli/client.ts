/**
 * HTTP client for the management API. Problem documents become CliError with the server's own words; a node
 * that cannot be reached becomes a connection error (exit code 3).
 */

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

export class ApiClient {
  readonly baseUrl: string;

  constructor(connect: string, readonly timeoutMs = 30_000) {
    this.baseUrl = /^https?:\/\//.test(connect) ? connect.replace(/\/$/, "") : `http://${connect}`;
  }

  async request(method: string, path: string, body?: BodyInit, headers?: HeadersInit): Promise<ApiResponse> {
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        body,
        headers,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const reason = (e as Error).name === "TimeoutError"
        ? `no answer within ${this.timeoutMs} ms`
        : (e as Error).message;
      throw new CliError(`cannot reach ${this.baseUrl}: ${reason}`, EXIT_CONNECTION);
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (!response.ok) throw new CliError(describeFailure(response, bytes));
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
      response = await fetch(this.baseUrl + path, { headers: { accept: "text/event-stream" }, signal });
    } catch (e) {
      if (signal?.aborted) return;
      throw new CliError(`cannot reach ${this.baseUrl}: ${(e as Error).message}`, EXIT_CONNECTION);
    }
    if (!response.ok || !response.body) {
      throw new CliError(describeFailure(response, new Uint8Array(await response.arrayBuffer())));
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
