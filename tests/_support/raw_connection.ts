/** Raw TCP clients for tests of servers against misbehaving clients (slow-loris, partial bodies, limits). */

export interface RawConnection {
  conn: Deno.TcpConn;
  /** Everything the server sent, as text. */
  received: string;
  /** How long the connection stayed open (-1 while it is open). */
  openMs: number;
  /** Settles when the server closed (or reset) the connection. */
  closed: Promise<void>;
}

/** Connects, writes `text` (nothing when empty), and records what comes back and when the server closed it. */
export async function rawConnection(hostname: string, port: number, text = ""): Promise<RawConnection> {
  const conn = await Deno.connect({ hostname, port });
  const openedAt = performance.now();
  const state: RawConnection = { conn, received: "", openMs: -1, closed: Promise.resolve() };
  state.closed = (async () => {
    const buffer = new Uint8Array(4096);
    try {
      for (let n; (n = await conn.read(buffer)) !== null;) {
        state.received += new TextDecoder().decode(buffer.subarray(0, n));
      }
    } catch {
      // reset by the server
    }
    state.openMs = performance.now() - openedAt;
    try {
      conn.close();
    } catch {
      // already closed
    }
  })();
  if (text) await conn.write(new TextEncoder().encode(text));
  return state;
}

/** Rejects when `promise` takes longer than `ms`; the message names what was awaited. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
