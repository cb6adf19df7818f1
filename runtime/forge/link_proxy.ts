/**
 * A loopback TCP proxy that carries one mesh link and can break it: a real network partition and real latency
 * for Forge's chaos commands and for tests of anything that talks over TCP (the mesh, consensus, KV).
 *
 * `partition()` stops forwarding in both directions without closing anything: the proxy stops reading, so
 * bytes pile up in kernel buffers and the senders see backpressure, exactly as when packets stop arriving.
 * New connections made during a partition are accepted but not forwarded either. `heal()` resumes forwarding
 * of everything held back, as TCP does when a partition heals before its connections time out.
 * `setLatency(ms)` delays every chunk by `ms` in each direction (one-way delay), keeping the order of bytes.
 *
 *   const proxy = startLinkProxy({ targetPort: mesh.port });
 *   other.setPeerAddress(mesh.self, "127.0.0.1", proxy.port);
 *   proxy.partition(); ... proxy.heal(); proxy.setLatency(50); ... await proxy.close();
 *
 * The target is dialed anew for every accepted connection, so a target process that restarts on the same port
 * is reached again as soon as it listens.
 */

export interface LinkProxy {
  /** The loopback port to connect to instead of the target. */
  readonly port: number;
  readonly partitioned: boolean;
  /** The one-way delay added to every chunk in each direction. */
  readonly latencyMs: number;
  /** Connections accepted so far. */
  readonly connections: number;
  partition(): void;
  heal(): void;
  setLatency(ms: number): void;
  /** Closes the listener and every proxied connection; resolves when all are closed. */
  close(): Promise<void>;
}

/** Bytes read but not yet written (held for latency) per direction of a connection before reading pauses. */
export const MAX_DELAYED_BYTES = 4 * 1024 * 1024;
/** Largest latency a link accepts: a delay longer than this is a partition, not latency. */
export const MAX_LATENCY_MS = 60_000;
const CHUNK_BYTES = 64 * 1024;

export function startLinkProxy(options: { targetPort: number; targetHost?: string }): LinkProxy {
  const targetHost = options.targetHost ?? "127.0.0.1";
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pumps = new Set<Promise<void>>();
  let partitioned = false;
  let latencyMs = 0;
  let healed: { promise: Promise<void>; resolve: () => void } = Promise.withResolvers<void>();
  healed.resolve();
  let closing = false;
  let accepted = 0;

  const closeConn = (conn: Deno.Conn) => {
    if (!open.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };

  /**
   * Copies one direction through a delay line: the reader stamps every chunk with when it is due, the writer
   * sends chunks in order once due. Both wait while partitioned; the reader also waits while the line is full.
   */
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const line: { dueAt: number; data: Uint8Array }[] = [];
    let lineBytes = 0;
    let readerDone = false;
    let failed = false;
    const writerWake = new Wakeup();
    const readerWake = new Wakeup();
    const writer = (async () => {
      try {
        while (!closing) {
          if (line.length === 0) {
            if (readerDone) return;
            await writerWake.wait();
            continue;
          }
          const waitMs = line[0].dueAt - Date.now();
          if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
          await healed.promise;
          if (closing) return;
          const { data } = line.shift()!;
          let written = 0;
          while (written < data.length) written += await to.write(data.subarray(written));
          lineBytes -= data.length;
          readerWake.fire();
        }
      } catch {
        failed = true;
        closeConn(from);
        closeConn(to);
        writerWake.fire();
        readerWake.fire();
      }
    })();
    const buffer = new Uint8Array(CHUNK_BYTES);
    try {
      while (!closing && !failed) {
        await healed.promise;
        if (closing) break;
        const n = await from.read(buffer);
        if (n === null) break;
        line.push({ dueAt: Date.now() + latencyMs, data: buffer.slice(0, n) });
        lineBytes += n;
        writerWake.fire();
        while (lineBytes >= MAX_DELAYED_BYTES && !closing && !failed) await readerWake.wait();
      }
    } catch {
      // A side closed or reset: end both directions below.
    }
    readerDone = true;
    writerWake.fire();
    await writer;
    closeConn(from);
    closeConn(to);
  };

  const track = (p: Promise<void>) => {
    pumps.add(p);
    p.finally(() => pumps.delete(p));
  };

  const serve = async () => {
    for await (const client of listener) {
      accepted++;
      open.add(client);
      track((async () => {
        await healed.promise;
        let target: Deno.Conn;
        try {
          target = await Deno.connect({ hostname: targetHost, port: options.targetPort });
        } catch {
          closeConn(client);
          return;
        }
        if (closing || !open.has(client)) {
          target.close();
          return;
        }
        open.add(target);
        // Small frames (consensus messages) go out at once, as the mesh's own sockets do: no Nagle delay here.
        for (const conn of [client, target]) {
          try {
            (conn as Deno.TcpConn).setNoDelay(true);
          } catch {
            // Closed meanwhile: the pumps end at once.
          }
        }
        track(pump(client, target));
        track(pump(target, client));
      })());
    }
  };
  const serving = serve().catch(() => {});

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get partitioned() {
      return partitioned;
    },
    get latencyMs() {
      return latencyMs;
    },
    get connections() {
      return accepted;
    },
    partition() {
      if (partitioned) return;
      partitioned = true;
      healed = Promise.withResolvers<void>();
    },
    heal() {
      if (!partitioned) return;
      partitioned = false;
      healed.resolve();
    },
    setLatency(ms: number) {
      if (!Number.isInteger(ms) || ms < 0 || ms > MAX_LATENCY_MS) {
        throw new RangeError(`latency: ${ms} is not a whole number of ms from 0 to ${MAX_LATENCY_MS}`);
      }
      latencyMs = ms;
    },
    async close() {
      closing = true;
      listener.close();
      healed.resolve();
      for (const conn of [...open]) closeConn(conn);
      await serving;
      while (pumps.size > 0) await Promise.allSettled([...pumps]);
    },
  };
}

/** One waiter woken by the other side of a pump (both run on one thread: no wakeup is lost between them). */
class Wakeup {
  #resolve: (() => void) | null = null;

  wait(): Promise<void> {
    return new Promise((resolve) => this.#resolve = resolve);
  }

  fire(): void {
    const resolve = this.#resolve;
    this.#resolve = null;
    resolve?.();
  }
}
