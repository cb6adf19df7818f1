/**
 * Timeouts and a connection limit for the node's HTTP listeners (management API and application port).
 *
 * Deno.serve (Deno 2.9.6) has none of these and no hook before a request's headers are complete: a client
 * that sends half a request line, or declares `content-length: 100` and sends 2 bytes, holds its connection
 * forever (measured: every such connection still open after 45 s), and nothing bounds how many it opens.
 * `node:http`'s `headersTimeout`, `requestTimeout` and `keepAliveTimeout` are accepted and ignored by Deno's
 * implementation (same probe: open after 5 s with 1 s limits). So each listener gets a thin accept loop in
 * front: it accepts TCP connections on the public address, counts them, and relays bytes to a Deno.serve
 * bound on an ephemeral loopback port. The handler wrapper tells the loop when a request starts and ends
 * (the inner server sees the relay's own socket as the remote address; its port names the connection), so:
 *
 * - header timeout: once a client starts a request (its first byte while no request is in flight), the
 *   handler must be reached within `headerTimeoutMs`, or the connection is closed (slow-loris);
 * - body timeout: a request body that delivers no bytes for `bodyTimeoutMs` fails the body read (the handler
 *   answers as for any broken body) and the connection is closed (partial bodies);
 * - idle timeout: a connection with no request in flight and no bytes for `idleTimeoutMs` is closed;
 * - connection limit: beyond `maxConnections` open connections, a new one is closed at once (counted).
 *
 * Handlers see the client's real address in `info.remoteAddr`. What it costs (the relay copies every byte
 * once more) is measured in the docs (issue 15 notes); without a guard none of the above holds.
 */

import { AetherError, type Logger } from "../core/mod.ts";

export interface ServerLimits {
  /** From a request's first byte to its handler being called (headers complete). */
  headerTimeoutMs: number;
  /** The longest a request body may go without delivering a byte. */
  bodyTimeoutMs: number;
  /** A connection with no request in flight is closed after this long without a byte. */
  idleTimeoutMs: number;
  /** Open connections per listener; beyond it new ones are closed at once. */
  maxConnections: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxConnections: 4096,
};

export interface GuardedServerOptions {
  /** Names the listener in logs and errors ("api", "app"). */
  name: string;
  hostname: string;
  port: number;
  limits: ServerLimits;
  log: Logger;
  /** PEM certificate and key: the listener serves HTTPS (TLS ends in the inner Deno.serve; the relay copies
   * ciphertext, and the header timeout then covers the TLS handshake too). */
  tls?: TlsCertificate;
}

export interface TlsCertificate {
  cert: string;
  key: string;
}

export type ServeHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

export interface GuardStats {
  open: number;
  refusedConnections: number;
  headerTimeouts: number;
  bodyTimeouts: number;
  idleTimeouts: number;
}

export interface GuardedServer {
  readonly addr: Deno.NetAddr;
  stats(): GuardStats;
  /** Stops accepting, closes idle connections, lets requests in flight finish, then closes the rest. */
  shutdown(): Promise<void>;
}

/** Deno.serve as it is, behind the same interface (for a listener whose limits a reverse proxy enforces). */
export function serveUnguarded(
  hostname: string,
  port: number,
  handler: ServeHandler,
  tls?: TlsCertificate,
): GuardedServer {
  const server = Deno.serve({ hostname, port, onListen: () => {}, ...tlsOptions(tls) }, handler);
  const none = { open: 0, refusedConnections: 0, headerTimeouts: 0, bodyTimeouts: 0, idleTimeouts: 0 };
  return { addr: server.addr, stats: () => none, shutdown: () => server.shutdown() };
}

function tlsOptions(tls: TlsCertificate | undefined): { cert?: string; key?: string } {
  return tls ? { cert: tls.cert, key: tls.key } : {};
}

/** After the inner server has shut down, relays get this long to pass on what it wrote last. */
const SHUTDOWN_DRAIN_MS = 1000;

/** Relay buffer: one read's worth per direction per connection. */
const RELAY_BUFFER_BYTES = 64 * 1024;

/** One accepted client connection and its relay to the inner server. */
interface Guarded {
  client: Deno.TcpConn;
  inner?: Deno.TcpConn;
  remote: Deno.NetAddr;
  inFlight: number;
  /** The client has started a request whose handler has not been called yet. */
  awaitingHandler: boolean;
  timer?: ReturnType<typeof setTimeout>;
  closed: boolean;
}

export function checkServerLimits(limits: ServerLimits, where: string): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new AetherError("bad_request", `${where}: ${name} must be a positive integer, got ${value}`);
    }
  }
}

export function serveGuarded(options: GuardedServerOptions, handler: ServeHandler): GuardedServer {
  checkServerLimits(options.limits, `${options.name} server`);
  return new Guard(options, handler);
}

class Guard implements GuardedServer {
  readonly addr: Deno.NetAddr;
  readonly #options: GuardedServerOptions;
  readonly #limits: ServerLimits;
  readonly #listener: Deno.TcpListener;
  readonly #inner: Deno.HttpServer<Deno.NetAddr>;
  /** Open connections by the local port of their relay socket (the inner server's view of the remote). */
  readonly #byRelayPort = new Map<number, Guarded>();
  readonly #open = new Set<Guarded>();
  /** Every relay still running (shutdown waits briefly for them to pass on the last responses). */
  readonly #relays = new Set<Promise<void>>();
  readonly #stats = { refusedConnections: 0, headerTimeouts: 0, bodyTimeouts: 0, idleTimeouts: 0 };
  #stopping = false;
  readonly #acceptLoop: Promise<void>;

  constructor(options: GuardedServerOptions, handler: ServeHandler) {
    this.#options = options;
    this.#limits = options.limits;
    this.#inner = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {}, ...tlsOptions(options.tls) },
      (request, info) => this.#handle(request, info, handler),
    );
    try {
      this.#listener = Deno.listen({ hostname: options.hostname, port: options.port });
    } catch (e) {
      this.#inner.shutdown();
      throw e;
    }
    this.addr = this.#listener.addr;
    this.#acceptLoop = this.#accept();
  }

  stats(): GuardStats {
    return { open: this.#open.size, ...this.#stats };
  }

  async shutdown(): Promise<void> {
    this.#stopping = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#acceptLoop;
    // Idle connections go now; requests in flight finish first (Deno.serve's shutdown waits for them while
    // the relay keeps carrying their responses), then whatever is left is closed.
    for (const conn of [...this.#open]) if (conn.inFlight === 0) this.#close(conn);
    await this.#inner.shutdown();
    // The inner server has written its last responses to the relays; give them a moment to pass them on.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = Promise.allSettled([...this.#relays]);
    await Promise.race([drained, new Promise((resolve) => timer = setTimeout(resolve, SHUTDOWN_DRAIN_MS))]);
    clearTimeout(timer);
    for (const conn of [...this.#open]) this.#close(conn);
  }

  async #accept(): Promise<void> {
    while (!this.#stopping) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch (e) {
        if (this.#stopping || e instanceof Deno.errors.BadResource) return;
        this.#options.log.warn("http accept failed", { server: this.#options.name, error: String(e) });
        continue;
      }
      if (this.#open.size >= this.#limits.maxConnections) {
        this.#stats.refusedConnections++;
        if (this.#stats.refusedConnections === 1 || this.#stats.refusedConnections % 1000 === 0) {
          this.#options.log.warn("http connection refused: connection limit reached", {
            server: this.#options.name,
            maxConnections: this.#limits.maxConnections,
            refused: this.#stats.refusedConnections,
          });
        }
        client.close();
        continue;
      }
      const relay = this.#relay(client);
      this.#relays.add(relay);
      relay.finally(() => this.#relays.delete(relay));
    }
  }

  async #relay(client: Deno.TcpConn): Promise<void> {
    const conn: Guarded = {
      client,
      remote: client.remoteAddr,
      inFlight: 0,
      awaitingHandler: false,
      closed: false,
    };
    this.#open.add(conn);
    this.#arm(conn, "idle");
    try {
      client.setNoDelay(true);
      const inner = await Deno.connect({ hostname: "127.0.0.1", port: this.#inner.addr.port });
      inner.setNoDelay(true);
      conn.inner = inner;
      if (conn.closed) return inner.close();
      const relayPort = inner.localAddr.port;
      this.#byRelayPort.set(relayPort, conn);
      await Promise.all([
        this.#pump(client, inner, () => this.#clientBytes(conn)),
        this.#pump(inner, client, () => {}),
      ]);
      this.#byRelayPort.delete(relayPort);
    } catch (e) {
      if (!conn.closed) {
        this.#options.log.debug("http relay failed", { server: this.#options.name, error: String(e) });
      }
    } finally {
      this.#close(conn);
    }
  }

  /** Copies one direction until end of stream or an error; `onBytes` runs before each chunk is passed on. */
  async #pump(from: Deno.TcpConn, to: Deno.TcpConn, onBytes: () => void): Promise<void> {
    const buffer = new Uint8Array(RELAY_BUFFER_BYTES);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        onBytes();
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
      await to.closeWrite().catch(() => {});
    } catch {
      // The other direction or a timeout closed the connection.
    }
  }

  /** A byte from the client: it is starting a request (header timer) or sending a body (no timer change). */
  #clientBytes(conn: Guarded): void {
    if (conn.inFlight > 0 || conn.awaitingHandler) return;
    conn.awaitingHandler = true;
    this.#arm(conn, "header");
  }

  #arm(conn: Guarded, kind: "header" | "idle"): void {
    clearTimeout(conn.timer);
    const ms = kind === "header" ? this.#limits.headerTimeoutMs : this.#limits.idleTimeoutMs;
    conn.timer = setTimeout(() => {
      if (kind === "header") this.#stats.headerTimeouts++;
      else this.#stats.idleTimeouts++;
      this.#options.log.debug(`http connection closed: ${kind} timeout`, {
        server: this.#options.name,
        remote: `${conn.remote.hostname}:${conn.remote.port}`,
        timeoutMs: ms,
      });
      this.#close(conn);
    }, ms);
  }

  #close(conn: Guarded): void {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.timer);
    this.#open.delete(conn);
    for (const socket of [conn.client, conn.inner]) {
      try {
        socket?.close();
      } catch {
        // Already closed.
      }
    }
  }

  #handle(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    handler: ServeHandler,
  ): Response | Promise<Response> {
    const conn = this.#byRelayPort.get(info.remoteAddr.port);
    if (!conn) return handler(request, info); // not through the relay (a local client of the inner port)
    clearTimeout(conn.timer);
    conn.awaitingHandler = false;
    conn.inFlight++;
    info.completed.finally(() => {
      conn.inFlight--;
      if (conn.inFlight === 0 && !conn.closed) this.#arm(conn, "idle");
    });
    const realInfo = { remoteAddr: conn.remote, completed: info.completed };
    const body = request.body;
    if (body === null) return handler(request, realInfo);
    // Built from the parts, not `new Request(request, ...)`: copying a request reads its `signal`, and the
    // first read makes Deno 2.9.6 print a warning about the signal's legacy behaviour on standard error, a line
    // that is not a log record (it broke --log-format json). Handlers here notice a gone client through their
    // streams, not the signal.
    const timed = new Request(request.url, {
      method: request.method,
      headers: request.headers,
      body: this.#timedBody(body, conn),
      // @ts-ignore: `duplex` is required by fetch for a stream body but missing from Deno's RequestInit type.
      duplex: "half",
    });
    return handler(timed, realInfo);
  }

  /** The request body, failing (and closing the connection) when no chunk arrives for bodyTimeoutMs. */
  #timedBody(body: ReadableStream<Uint8Array>, conn: Guarded): ReadableStream<Uint8Array> {
    const reader = body.getReader();
    const timeoutMs = this.#limits.bodyTimeoutMs;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = new Promise<"timeout">((resolve) =>
          timer = setTimeout(() => resolve("timeout"), timeoutMs)
        );
        try {
          const next = await Promise.race([reader.read(), timedOut]);
          if (next === "timeout") {
            this.#stats.bodyTimeouts++;
            const error = new AetherError(
              "bad_request",
              `request body: no bytes for ${timeoutMs} ms (body timeout)`,
            );
            reader.cancel(error).catch(() => {});
            controller.error(error);
            // Let the handler's answer go out first, then drop the connection it can no longer use.
            setTimeout(() => this.#close(conn), 100);
            return;
          }
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (e) {
          controller.error(e);
        } finally {
          clearTimeout(timer);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
  }
}
