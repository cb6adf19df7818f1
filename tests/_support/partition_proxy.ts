/**
 * A loopback TCP proxy that can partition the connections it carries: a real network partition for tests of
 * anything that talks over TCP (the mesh, consensus, the KV layer).
 *
 * `partition()` stops forwarding in both directions without closing anything: the proxy stops reading, so
 * bytes pile up in kernel buffers and the senders see backpressure, exactly as when packets stop arriving.
 * New connections made during a partition are accepted but not forwarded either. `heal()` resumes forwarding
 * of everything held back, as TCP does when a partition heals before its connections time out.
 *
 *   const proxy = startPartitionProxy({ targetPort: mesh.port });
 *   other.setPeerAddress(mesh.self, "127.0.0.1", proxy.port);
 *   proxy.partition(); ... proxy.heal(); ... await proxy.close();
 */

export interface PartitionProxy {
  /** The loopback port to connect to instead of the target. */
  readonly port: number;
  readonly partitioned: boolean;
  /** Connections accepted so far. */
  readonly connections: number;
  partition(): void;
  heal(): void;
  /** Closes the listener and every proxied connection; resolves when all are closed. */
  close(): Promise<void>;
}

export function startPartitionProxy(options: { targetPort: number; targetHost?: string }): PartitionProxy {
  const targetHost = options.targetHost ?? "127.0.0.1";
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pumps = new Set<Promise<void>>();
  let partitioned = false;
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

  /** Copies one direction; waits at every chunk while partitioned. */
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (!closing) {
        await healed.promise;
        if (closing) break;
        const n = await from.read(buffer);
        if (n === null) break;
        await healed.promise;
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch {
      // A side closed or reset: end both directions below.
    }
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
