import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  ChunkAssembler,
  chunksOf,
  fetchCandidates,
  parseRepoMessage,
  replicaCandidates,
  replicaCount,
} from "./_protocol.ts";

const SHA = "a".repeat(64);

Deno.test("protocol: well-formed messages parse to themselves, malformed ones say what is wrong", () => {
  const good = [
    { t: "put", id: "n1.ab.1", sha256: SHA, sizeBytes: 10 },
    { t: "put-ready", id: "n1.ab.1", have: false },
    { t: "put-done", id: "n1.ab.1", ok: false, reason: "disk full" },
    { t: "put-done", id: "n1.ab.1", ok: true },
    { t: "get", id: "n2.cd.7", sha256: SHA },
    { t: "get-begin", id: "n2.cd.7", sizeBytes: 0 },
    { t: "get-missing", id: "n2.cd.7", reason: "not held here" },
    { t: "chunk", id: "n2.cd.7", i: 3, data: new Uint8Array([1, 2]) },
    { t: "abort", id: "n2.cd.7", reason: "gone" },
  ];
  for (const message of good) deepStrictEqual(parseRepoMessage(message), message);
  const bad: [unknown, RegExp][] = [
    [null, /not an object/],
    [[1], /not an object/],
    [{ t: "put", id: "x y", sha256: SHA, sizeBytes: 1 }, /bad transfer id/],
    [{ t: "put", id: "a", sha256: "ABC", sizeBytes: 1 }, /put: bad sha256/],
    [{ t: "put", id: "a", sha256: SHA, sizeBytes: -1 }, /put: bad sizeBytes/],
    [{ t: "put", id: "a", sha256: SHA, sizeBytes: 1.5 }, /put: bad sizeBytes/],
    [{ t: "put-ready", id: "a", have: "yes" }, /bad have/],
    [{ t: "put-done", id: "a", ok: false, reason: "x".repeat(2000) }, /bad reason/],
    [{ t: "chunk", id: "a", i: 0, data: [1, 2] }, /data is not bytes/],
    [{ t: "chunk", id: "a", i: -1, data: new Uint8Array() }, /bad index/],
    [{ t: "teleport", id: "a" }, /unknown message type "teleport"/],
  ];
  for (const [message, pattern] of bad) {
    const result = parseRepoMessage(message);
    equal(typeof result, "string", JSON.stringify(message));
    ok(pattern.test(result as string), `${result} should match ${pattern}`);
  }
});

Deno.test("protocol: chunks put back together give the same bytes, for every size around the chunk size", () => {
  const chunkBytes = 8;
  for (const size of [0, 1, 7, 8, 9, 16, 17, 100]) {
    const blob = new Uint8Array(size).map((_, i) => (i * 31) % 256);
    const chunks = [...chunksOf(blob, chunkBytes)];
    equal(chunks.length, Math.max(1, Math.ceil(size / chunkBytes)), `size ${size}`);
    ok(chunks.every((c) => c.length <= chunkBytes));
    const assembler = new ChunkAssembler(size);
    chunks.forEach((chunk, i) => equal(assembler.add(i, chunk), i === chunks.length - 1));
    deepStrictEqual(assembler.bytes(), blob);
  }
});

Deno.test("protocol: a broken transfer is refused: gaps, repeats, overruns, empty chunks, reading early", () => {
  const fresh = () => new ChunkAssembler(10);
  throws(() => fresh().add(1, new Uint8Array(4)), /chunk 1 arrived where chunk 0 was due/);
  const repeated = fresh();
  repeated.add(0, new Uint8Array(4));
  throws(() => repeated.add(0, new Uint8Array(4)), /chunk 0 arrived where chunk 1 was due/);
  throws(() => fresh().add(0, new Uint8Array(11)), /overruns the announced size \(11 > 10 bytes\)/);
  throws(() => fresh().add(0, new Uint8Array(0)), /chunk 0 is empty/);
  const partial = fresh();
  partial.add(0, new Uint8Array(4));
  throws(() => partial.bytes(), /blob incomplete: 4 of 10 bytes/);
  const done = fresh();
  done.add(0, new Uint8Array(10));
  throws(() => done.add(1, new Uint8Array(1)), /after the blob was complete/);
  throws(() => new ChunkAssembler(-1), RangeError);
});

Deno.test("protocol: replica candidates are the connected other members, stable per blob, spread over blobs", () => {
  const members = ["n1", "n2", "n3", "n4", "n5"];
  const connected = (id: string) => id !== "n4";
  const order = replicaCandidates("n1", members, connected, SHA);
  deepStrictEqual([...order].sort(), ["n2", "n3", "n5"]);
  deepStrictEqual(replicaCandidates("n1", members, connected, SHA), order, "the same blob, the same order");
  const firsts = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const sha = i.toString(16).padStart(64, "0");
    const first = replicaCandidates("n1", members, () => true, sha)[0];
    firsts.set(first, (firsts.get(first) ?? 0) + 1);
  }
  deepStrictEqual([...firsts.keys()].sort(), ["n2", "n3", "n4", "n5"]);
  for (const [id, count] of firsts) ok(count > 30, `${id} comes first for only ${count} of 300 blobs`);
});

Deno.test("protocol: a fetch asks the connected holders in record order, then the other connected members", () => {
  const members = ["n1", "n2", "n3", "n4", "n5"];
  deepStrictEqual(
    fetchCandidates("n1", members, ["n3", "n1", "n5", "n2"], (id) => id !== "n5"),
    ["n3", "n2", "n4"],
  );
  deepStrictEqual(fetchCandidates("n1", members, ["n1"], () => false), []);
});

Deno.test("protocol: the replica count comes from the request, else the flag, else min(3, members)", () => {
  equal(replicaCount(5, undefined, undefined), 3);
  equal(replicaCount(1, undefined, undefined), 1);
  equal(replicaCount(3, undefined, 2), 2);
  equal(replicaCount(3, 1, 2), 1);
  equal(replicaCount(3, 4, undefined), "replicas is 4 but the cluster has 3 member(s)");
  equal(replicaCount(3, 0, undefined), "replicas must be a positive integer, got 0");
});
