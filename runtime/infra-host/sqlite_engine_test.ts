import assert from "node:assert/strict";
import { SqliteEngine } from "./sqlite_engine.ts";
import { MemoryEngine, type StoredEntry, type StoreEngine } from "./engine.ts";
import { partitionOf } from "./partitioning.ts";

const entry = (
  key: string,
  version: number,
  value: string | null = `v${version}`,
  expiresAtMs = 0,
): StoredEntry => ({
  key,
  value,
  version,
  origin: "n1",
  writtenAtMs: 1_000,
  expiresAtMs,
});

async function exercise(engine: StoreEngine): Promise<void> {
  const writes = [];
  for (let i = 0; i < 200; i++) writes.push(engine.put("s", partitionOf(`k${i}`), entry(`k${i}`, i + 1)));
  // Staged writes are visible before they are durable.
  assert.equal(engine.get("s", "k7")?.value, "v8");
  await Promise.all(writes);
  await engine.put("s", partitionOf("k7"), entry("k7", 500, null));
  assert.equal(engine.get("s", "k7")?.value, null, "a tombstone is stored, not a deletion");
  assert.equal(engine.get("other", "k7"), undefined, "stores are separate");
  const p = partitionOf("k1");
  assert.ok(engine.scan("s", p).some((e) => e.key === "k1"));
  assert.ok(engine.scan("s", p).every((e) => partitionOf(e.key) === p));
  assert.equal([...engine.all("s")].length, 200);
  await engine.put("s", partitionOf("ttl"), entry("ttl", 1, "x", 5_000));
  const swept = engine.sweep("s", 6_000, 0);
  assert.deepEqual(swept.map((s) => s.entry.key), ["ttl"]);
  assert.equal(engine.sweep("s", 0, 2_000).map((s) => s.entry.key).join(), "k7", "old tombstones go too");
  // liveBytes: key + value (+ 10 each here) of the live entries of one partition under a prefix.
  const q = partitionOf("g/a", 4);
  await engine.put("q", q, entry("g/a", 1, "12345"));
  await engine.put("q", q, entry("g/b", 2, "123", 9_000));
  await engine.put("q", q, entry("g/c", 3, null));
  await engine.put("q", q, entry("g0", 4, "1"));
  await engine.put("q", q, entry("h/a", 5, "1"));
  await engine.put("q", q + 1, entry("g/z", 6, "1"));
  assert.equal(engine.liveBytes("q", q, "g/", 8_000, 10), 18 + 16, "the live entries of g/ in partition q");
  assert.equal(engine.liveBytes("q", q, "g/", 9_000, 10), 18, "an expired entry counts nothing");
  assert.equal(engine.liveBytes("q", q, "x/", 0, 10), 0);
  engine.dropPartition("s", p);
  assert.equal(engine.get("s", "k1"), undefined);
  assert.ok(!engine.partitions("s").includes(p));
}

Deno.test("memory engine: put, get, scan, sweep, drop", async () => {
  await exercise(new MemoryEngine((k) => partitionOf(k)));
});

Deno.test("sqlite engine: the same, group-committed, and every acknowledged write survives a reopen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store-engine-" });
  try {
    const engine = new SqliteEngine({ dataDir: dir, fsync: true });
    await exercise(engine);
    await engine.put("s", partitionOf("durable"), entry("durable", 9, "kept", 0));
    engine.close();
    const reopened = new SqliteEngine({ dataDir: dir, fsync: true });
    assert.equal(reopened.get("s", "durable")?.value, "kept");
    assert.equal(reopened.get("s", "k2")?.version, 3);
    assert.deepEqual(reopened.storeNames(), ["q", "s"]);
    reopened.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
