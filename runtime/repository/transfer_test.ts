/** The blob transfer protocol between two real meshes on loopback, each with its own blob store on disk. */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { createLogger } from "../core/mod.ts";
import { Mesh } from "../net/mod.ts";
import { sha256Hex } from "../../slices/host.ts";
import { BlobStore } from "./blob_store.ts";
import { BlobTransfers } from "./_transfer.ts";

const SECRET = new TextEncoder().encode("repository-transfer-test-secret");
const quiet = createLogger({ level: "error", sink: () => {} });

interface Side {
  mesh: Mesh;
  store: BlobStore;
  transfers: BlobTransfers;
  dataDir: string;
  corrupt: string[];
}

async function pair(maxBytes = 32 * 1024 * 1024): Promise<[Side, Side, () => Promise<void>]> {
  const ids = ["n1", "n2"];
  const meshes = ids.map((self) =>
    new Mesh({
      self,
      peers: ids.map((id) => ({ id, host: "127.0.0.1", port: 0 })),
      secret: SECRET,
      logger: quiet,
    })
  );
  for (const mesh of meshes) await mesh.start();
  meshes[0].setPeerAddress("n2", "127.0.0.1", meshes[1].port);
  meshes[1].setPeerAddress("n1", "127.0.0.1", meshes[0].port);
  const sides: Side[] = [];
  for (const [i, mesh] of meshes.entries()) {
    const dataDir = await Deno.makeTempDir({ prefix: `aether-transfer-${ids[i]}-` });
    const store = new BlobStore({ dataDir, fsync: false });
    const corrupt: string[] = [];
    const transfers = new BlobTransfers({
      self: ids[i],
      mesh,
      store,
      log: quiet,
      maxBytes,
      idleTimeoutMs: 5_000,
      onCorrupt: (sha) => corrupt.push(sha),
    });
    sides.push({ mesh, store, transfers, dataDir, corrupt });
  }
  const deadline = Date.now() + 10_000;
  while (!meshes.every((m) => m.connectedPeers().length === 1)) {
    if (Date.now() > deadline) throw new Error("meshes did not connect");
    await new Promise((r) => setTimeout(r, 5));
  }
  const close = async () => {
    for (const side of sides) side.transfers.stop();
    await Promise.all(meshes.map((m) => m.stop()));
    for (const side of sides) await Deno.remove(side.dataDir, { recursive: true });
  };
  return [sides[0], sides[1], close];
}

function blob(sizeBytes: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(sizeBytes);
  let x = seed;
  for (let i = 0; i < sizeBytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

Deno.test("transfer: a push of a blob larger than one chunk is stored durably on the peer, once", async () => {
  const [a, b, close] = await pair();
  try {
    const bytes = blob(1024 * 1024 + 17);
    const sha = await sha256Hex(bytes);
    await a.transfers.push("n2", sha, bytes);
    deepStrictEqual(await b.store.read(sha), bytes);
    const framesBefore = a.mesh.peerStats("n2").bytesOut;
    await a.transfers.push("n2", sha, bytes);
    const resent = a.mesh.peerStats("n2").bytesOut - framesBefore;
    ok(resent < 4096, `a second push of a blob the peer holds sends only the offer, not ${resent} bytes`);
    equal(b.transfers.stats.pushesReceived, 2);
  } finally {
    await close();
  }
});

Deno.test("transfer: a fetch returns the holder's verified copy; a missing or corrupt copy is refused", async () => {
  const [a, b, close] = await pair();
  try {
    const bytes = blob(600 * 1024, 7);
    const sha = await sha256Hex(bytes);
    await b.store.put(sha, bytes);
    deepStrictEqual(await a.transfers.fetch("n2", sha), bytes);
    equal(await a.store.has(sha), false, "a fetch alone does not store");

    await rejects(a.transfers.fetch("n2", "f".repeat(64)), /cannot serve blob f{64}: not held here/);

    await Deno.writeFile(join(b.store.dir, sha), blob(600 * 1024, 8));
    await rejects(a.transfers.fetch("n2", sha), /this node's copy is corrupt/);
    deepStrictEqual(b.corrupt, [sha], "the holder reports its own corrupt copy so it can be repaired");
    equal(await b.store.has(sha), false, "and quarantines it");
  } finally {
    await close();
  }
});

Deno.test("transfer: a peer refuses a blob over its limit and nothing is stored", async () => {
  const [a, b, close] = await pair(1024);
  try {
    const bytes = blob(4096);
    const sha = await sha256Hex(bytes);
    await rejects(a.transfers.push("n2", sha, bytes), /n2 did not store the blob: 4096 bytes is over/);
    equal(await b.store.has(sha), false);
  } finally {
    await close();
  }
});

Deno.test("transfer: a push fails promptly when the peer goes down in the middle", async () => {
  const [a, b, close] = await pair();
  try {
    const bytes = blob(8 * 1024 * 1024, 3);
    const sha = await sha256Hex(bytes);
    const started = Date.now();
    // The rejection handler is attached before the peer stops: the push may fail while stop() is awaited.
    const failed = rejects(a.transfers.push("n2", sha, bytes), /n2 (went down|went away|is not reachable)/);
    await b.mesh.stop();
    await failed;
    ok(Date.now() - started < 4_000, "failed on the disconnect, not on the idle timeout");
  } finally {
    await close();
  }
});
