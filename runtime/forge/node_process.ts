/**
 * One node as a child process: started with the narrow permissions of `nodeCommandArgs`, standard input piped
 * (so it exits when this process dies), its ready line read from standard output, its log collected from
 * standard error. Used by Forge and by the multi-process tests.
 */

import { nodeCommandArgs } from "../node/mod.ts";

export interface ReadyLine {
  event: "ready";
  nodeId: string;
  clusterPort: number;
  apiPort: number;
  httpPort: number;
}

/** The secrets' master key file Forge keeps beside its mesh secret (in .forge/). */
export const SECRETS_KEY_FILE = "secrets.key";

export interface NodeProcessOptions {
  id: string;
  /** The --peers value, the same for every member. */
  peers: string;
  dataDir: string;
  secretFile: string;
  apiPort?: number;
  httpPort?: number;
  /** --bootstrap-token-file: the cluster's first admin token, when this node creates it. */
  bootstrapTokenFile?: string;
  /** --secrets-key-file: the secrets' master key (Forge writes .forge/secrets.key). */
  secretsKeyFile?: string;
  /** The token `json()` and `api()` send (Authorization: Bearer). */
  token?: string;
  extraArgs?: string[];
  /** Receives the node's log as it arrives (default: kept in `log`). */
  onLog?: (text: string) => void;
  readyTimeoutMs?: number;
}

export class NodeProcess {
  process: Deno.ChildProcess | null = null;
  ready: ReadyLine | null = null;
  /** The node's log (standard error) when no onLog sink was given. */
  log = "";
  exited: Promise<Deno.CommandStatus> | null = null;

  constructor(readonly options: NodeProcessOptions) {}

  get id(): string {
    return this.options.id;
  }

  get running(): boolean {
    return this.process !== null;
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.#ready().apiPort}`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.#ready().httpPort}`;
  }

  #ready(): ReadyLine {
    if (!this.ready) throw new Error(`${this.id} is not running`);
    return this.ready;
  }

  async start(): Promise<ReadyLine> {
    if (this.process) throw new Error(`${this.id} already running`);
    const o = this.options;
    const child = new Deno.Command(Deno.execPath(), {
      args: nodeCommandArgs({
        dataDir: o.dataDir,
        secretFile: o.secretFile,
        nodeArgs: [
          ...["--id", o.id, "--peers", o.peers, "--data-dir", o.dataDir, "--secret-file", o.secretFile],
          ...["--api-port", String(o.apiPort ?? 0), "--http-port", String(o.httpPort ?? 0)],
          ...(o.bootstrapTokenFile ? ["--bootstrap-token-file", o.bootstrapTokenFile] : []),
          ...(o.secretsKeyFile ? ["--secrets-key-file", o.secretsKeyFile] : []),
          ...(o.extraArgs ?? []),
        ],
      }),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    }).spawn();
    this.process = child;
    this.exited = child.status;
    this.#collectLog(child.stderr);
    try {
      this.ready = await this.#readReadyLine(child);
    } catch (e) {
      await this.stop("SIGKILL");
      throw e;
    }
    return this.ready;
  }

  async #collectLog(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream) {
        const text = decoder.decode(chunk, { stream: true });
        if (this.options.onLog) this.options.onLog(text);
        else this.log += text;
      }
    } catch {
      // The stream ends with the process.
    }
  }

  async #readReadyLine(child: Deno.ChildProcess): Promise<ReadyLine> {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const timeoutMs = this.options.readyTimeoutMs ?? 30_000;
    const timer = setTimeout(() => reader.cancel("timeout").catch(() => {}), timeoutMs);
    let buffer = "";
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`${this.id} exited or was not ready within ${timeoutMs} ms\n${this.log}`);
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.includes('"event":"ready"')) {
            drain(reader);
            return JSON.parse(line) as ReadyLine;
          }
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL for a crash, SIGTERM for a clean stop (escalating to SIGKILL after `graceMs`). */
  async stop(
    signal: "SIGKILL" | "SIGTERM" = "SIGTERM",
    graceMs = 10_000,
  ): Promise<Deno.CommandStatus | null> {
    const child = this.process;
    if (!child) return null;
    signalSafely(child, signal);
    const escalate = signal === "SIGTERM"
      ? setTimeout(() => signalSafely(child, "SIGKILL"), graceMs)
      : undefined;
    const status = await this.exited!;
    clearTimeout(escalate);
    await child.stdin.close().catch(() => {});
    this.process = null;
    this.ready = null;
    return status;
  }

  /** A crash: SIGKILL, no chance to clean up. */
  kill(): Promise<Deno.CommandStatus | null> {
    return this.stop("SIGKILL");
  }

  /** Pauses or resumes the process (SIGSTOP/SIGCONT): a node that is alive but silent. */
  freeze(frozen: boolean): void {
    if (this.process) signalSafely(this.process, frozen ? "SIGSTOP" : "SIGCONT");
  }

  /** fetch() against this node's management API with its token (unless `init` sets Authorization itself). */
  api(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.options.token && !headers.has("authorization")) {
      headers.set("authorization", `Bearer ${this.options.token}`);
    }
    return fetch(this.apiUrl + path, { ...init, headers });
  }

  async json<T = Record<string, unknown>>(
    path: string,
    init?: RequestInit,
  ): Promise<{ status: number; body: T }> {
    const response = await this.api(path, init);
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
  }
}

function signalSafely(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already exited.
  }
}

/** Keeps reading so the child never blocks on a full pipe. */
async function drain(reader: ReadableStreamDefaultReader<string>): Promise<void> {
  try {
    while (!(await reader.read()).done) { /* discard */ }
  } catch {
    // Closed with the process.
  }
}

/** A free loopback port (bound and released: static membership needs cluster ports before nodes start). */
export function freePort(): number {
  // A port the kernel hands out for port 0 comes from the ephemeral range, which outgoing connections draw
  // from too: between this check and the node's bind, any client socket on the machine may take it
  // (EADDRINUSE at the node's start, seen in CI). Ports below Linux's default range (32768–60999) are given
  // only to those who ask for them by number, so Forge picks one there first.
  for (let attempt = 0; attempt < FREE_PORT_ATTEMPTS; attempt++) {
    const port = LOW_PORT_FIRST + Math.floor(Math.random() * (LOW_PORT_LAST - LOW_PORT_FIRST + 1));
    if (portIsFree(port)) return port;
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Below the kernel's default ephemeral range (net.ipv4.ip_local_port_range 32768–60999). */
const LOW_PORT_FIRST = 20_000;
const LOW_PORT_LAST = 32_000;
/** Random low ports tried before falling back to one the kernel picks. */
const FREE_PORT_ATTEMPTS = 64;

/** True when nothing listens on the port (so a preferred default port can be used). */
export function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}
