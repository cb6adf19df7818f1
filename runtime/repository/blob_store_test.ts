import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../../slices/host.ts";
import { BlobStore, CorruptBlobError } from "./blob_store.ts";

async function withStore(fn: (store: BlobStore, dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "aether-blobs-" });
  try {
    await fn(new BlobStore({ dataDir }), dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

const bytesOf = (text: string) => new TextEncoder().encode(text);

Deno.test("blob store: a blob is stored under its sha-256, read back verified, listed and removed", async () => {
  await withStore(async (store, dataDir) => {
    const bytes = bytesOf("export default 42;\n");
    const sha = await sha256Hex(bytes);
    equal(await store.has(sha), false);
    equal(await store.read(sha), undefined);
    equal(await store.put(sha, bytes), true);
    equal(await store.put(sha, bytes), false, "a second put of the same blob changes nothing");
    deepStrictEqual(await Deno.readFile(join(dataDir, "blobs", sha)), bytes);
    deepStrictEqual(await store.read(sha), bytes);
    const listed = await store.list();
    deepStrictEqual(listed.map((b) => [b.sha256, b.sizeBytes]), [[sha, bytes.length]]);
    deepStrictEqual(await store.stats(), { blobs: 1, bytes: bytes.length, corruptDetected: 0 });
    equal(await store.remove(sha), true);
    equal(await store.remove(sha), false);
    equal(await store.has(sha), false);
  });
});

Deno.test("blob store: bytes that do not hash to the name are refused and nothing is written", async () => {
  await withStore(async (store, dataDir) => {
    const sha = await sha256Hex(bytesOf("one"));
    await rejects(store.put(sha, bytesOf("two")), /hashes to [0-9a-f]{64}, not [0-9a-f]{64}; not stored/);
    equal(await store.has(sha), false);
    deepStrictEqual([...Deno.readDirSync(join(dataDir, "blobs", "tmp"))], [], "no temporary file is left");
    await rejects(store.put("ABC", bytesOf("x")), /is not a sha-256/);
  });
});

Deno.test("blob store: a blob corrupted on disk is detected on read, quarantined, and can be stored again", async () => {
  await withStore(async (store, dataDir) => {
    const bytes = bytesOf("export const answer = 42;\n");
    const sha = await sha256Hex(bytes);
    await store.put(sha, bytes);
    await Deno.writeFile(join(dataDir, "blobs", sha), bytesOf("export const answer = 43;\n"));
    const error = await store.read(sha).then(() => null, (e) => e);
    ok(error instanceof CorruptBlobError, `expected CorruptBlobError, got ${error}`);
    equal(error.sha256, sha);
    match(error.message, /is corrupt on disk/);
    equal(await store.has(sha), false, "the corrupt copy is out of the store");
    const quarantined = [...Deno.readDirSync(join(dataDir, "blobs", "quarantine"))].map((e) => e.name);
    equal(quarantined.length, 1);
    ok(quarantined[0].startsWith(sha));
    equal(store.corruptDetected, 1);
    equal(await store.put(sha, bytes), true, "a good copy can be stored again");
    deepStrictEqual(await store.read(sha), bytes);
  });
});

Deno.test("blob store: put replaces a corrupt copy instead of trusting it", async () => {
  await withStore(async (store, dataDir) => {
    const bytes = bytesOf("good");
    const sha = await sha256Hex(bytes);
    await store.put(sha, bytes);
    await Deno.writeFile(join(dataDir, "blobs", sha), bytesOf("bad!"));
    equal(await store.put(sha, bytes), true, "the corrupt copy did not count as present");
    deepStrictEqual(await store.read(sha), bytes);
  });
});

Deno.test("blob store: opening removes half-written temporary files and verifyAll finds corrupt blobs", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "aether-blobs-" });
  try {
    const first = new BlobStore({ dataDir });
    const good = bytesOf("good blob");
    const bad = bytesOf("blob to corrupt");
    const goodSha = await sha256Hex(good);
    const badSha = await sha256Hex(bad);
    await first.put(goodSha, good);
    await first.put(badSha, bad);
    // What a crash in the middle of a write leaves behind: a partial temporary file, never a partial blob.
    await Deno.writeFile(join(dataDir, "blobs", "tmp", `${goodSha}.abc.part`), good.subarray(0, 3));
    await Deno.writeFile(join(dataDir, "blobs", badSha), bytesOf("flipped"));

    const reopened = new BlobStore({ dataDir });
    deepStrictEqual([...Deno.readDirSync(join(dataDir, "blobs", "tmp"))], []);
    deepStrictEqual(await reopened.verifyAll(), [badSha]);
    deepStrictEqual((await reopened.list()).map((b) => b.sha256), [goodSha]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("blob store: concurrent puts of the same blob leave one whole copy", async () => {
  await withStore(async (store) => {
    const bytes = new Uint8Array(512 * 1024).map((_, i) => i % 251);
    const sha = await sha256Hex(bytes);
    await Promise.all(Array.from({ length: 4 }, () => store.put(sha, bytes)));
    deepStrictEqual(await store.read(sha), bytes);
    equal((await store.list()).length, 1);
  });
});
