/**
 * The artifact repository on real node processes: push through one node and fetch from another, a push that
 * survives the death of the node that received it, replication requirements, immutability (409 / no-op),
 * corrupt blobs detected and repaired, every kind of bad upload, delete (and refused while in use).
 */

import { deepStrictEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type NodeProcess, testAdminToken, TestCluster } from "../_support/cluster.ts";
import { buildSlice, type BuiltSlice } from "../../runtime/authoring/mod.ts";
import { sha256Hex, type SliceManifest } from "../../slices/manifest.ts";
import { createLogger } from "../../runtime/core/log.ts";
import { encodeValue, kvKeys } from "../../runtime/model/mod.ts";
import { startNode } from "../../runtime/node/node.ts";
import { parseNodeFlags } from "../../runtime/node/flags.ts";

const FIXTURE = fileURLToPath(new URL("./fixtures/repo_greeter.ts", import.meta.url));
const COORDS = "org.example.repo:greeter:1.0.0";

let builtOnce: Promise<BuiltSlice> | undefined;
const greeter = () => builtOnce ??= buildSlice(FIXTURE);

/** The built greeter with other coordinates and/or other bytes (a comment appended), its manifest matching. */
async function variant(coordinates: string, extra = ""): Promise<BuiltSlice> {
  const base = await greeter();
  const bundle = new TextEncoder().encode(new TextDecoder().decode(base.bundle) + extra);
  const manifest: SliceManifest = {
    ...base.manifest,
    coordinates,
    sha256: await sha256Hex(bundle),
    sizeBytes: bundle.length,
  };
  return { manifest, bundle };
}

interface UploadOptions {
  /** PUT to /artifacts/{coordinates} instead of POST /artifacts. */
  url?: string;
  replicas?: number;
  headers?: Record<string, string>;
  manifestText?: string;
  bundle?: Uint8Array | null;
}

async function upload(node: NodeProcess, slice: BuiltSlice, options: UploadOptions = {}) {
  const form = new FormData();
  form.set("manifest", options.manifestText ?? JSON.stringify(slice.manifest));
  const bundle = options.bundle === undefined ? slice.bundle : options.bundle;
  if (bundle !== null) form.set("bundle", new Blob([bundle as Uint8Array<ArrayBuffer>]), "bundle.js");
  const query = options.replicas === undefined ? "" : `?replicas=${options.replicas}`;
  const path = options.url === undefined ? "/api/v1/artifacts" : `/api/v1/artifacts/${options.url}`;
  const response = await node.api(`${path}${query}`, {
    method: options.url === undefined ? "POST" : "PUT",
    body: form,
    headers: options.headers,
  });
  return { status: response.status, body: await response.json() };
}

async function download(node: NodeProcess, coordinates: string) {
  const response = await node.api(`/api/v1/artifacts/${coordinates}/bundle`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, bytes, source: response.headers.get("x-aether-source"), response };
}

/** Every running node connected to every other (a push to 3 nodes needs all of them). */
async function fullyConnected(cluster: TestCluster): Promise<void> {
  await cluster.waitForLeader();
  await cluster.waitFor("every node to reach every other", async () => {
    for (const node of cluster.running()) {
      const { body } = await node.json<{ members: { connected: boolean }[] }>("/api/v1/status");
      if (!body.members.every((m) => m.connected)) return false;
    }
    return true;
  });
}

const blobPath = (cluster: TestCluster, node: string, sha: string) => `${cluster.root}/${node}/blobs/${sha}`;

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function blobFiles(cluster: TestCluster, node: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${cluster.root}/${node}/blobs`)) {
    if (entry.isFile) names.push(entry.name);
  }
  return names.sort();
}

Deno.test("repository: a push through one node is served by another, also after the receiving node is killed", async () => {
  const built = await greeter();
  const cluster = await TestCluster.start(3);
  try {
    await fullyConnected(cluster);
    const [n1] = cluster.nodes;
    const pushed = await upload(n1, built, { replicas: 2 });
    equal(pushed.status, 201, JSON.stringify(pushed.body));
    equal(pushed.body.created, true);
    const holders: string[] = pushed.body.record.holders;
    equal(holders.length, 2);
    equal(holders[0], "n1", "the receiving node holds it first");
    for (const id of holders) {
      deepStrictEqual(await Deno.readFile(blobPath(cluster, id, built.manifest.sha256)), built.bundle);
    }
    const keeper = cluster.node(holders[1]);
    const other = cluster.nodes.find((n) => !holders.includes(n.id))!;
    equal(
      await exists(blobPath(cluster, other.id, built.manifest.sha256)),
      false,
      "only the replicas hold it",
    );

    // kill -9 the node that received the push: the holder left serves the node without a copy.
    await n1.kill();
    const fetched = await download(other, COORDS);
    equal(fetched.status, 200);
    deepStrictEqual(fetched.bytes, built.bundle);
    equal(fetched.source, keeper.id, "fetched over the mesh from the surviving holder");
    equal(fetched.response.headers.get("x-aether-sha256"), built.manifest.sha256);
    // The fetching node stored it, verified, and recorded itself as a holder.
    deepStrictEqual(await Deno.readFile(blobPath(cluster, other.id, built.manifest.sha256)), built.bundle);
    await cluster.waitFor("the fetching node to be listed as a holder", async () => {
      const { body } = await other.json<{ holders: string[] }>(`/api/v1/artifacts/${COORDS}`);
      return body.holders.includes(other.id);
    });
    equal((await download(other, COORDS)).source, "local");

    // The default of min(3, members) nodes cannot be met with one member down: refused, nothing published.
    await cluster.waitFor("the survivors to notice that n1 is gone", async () => {
      const { body } = await keeper.json<{ members: { id: string; connected: boolean }[] }>("/api/v1/status");
      return body.members.some((m) => m.id === "n1" && !m.connected);
    });
    const next = await variant("org.example.repo:greeter:1.0.1", "// 1.0.1\n");
    const refused = await upload(keeper, next);
    equal(refused.status, 503, JSON.stringify(refused.body));
    match(refused.body.detail, /needs 3 nodes .* only 2 of 3 members are reachable.*nothing was published/);
    equal((await keeper.json(`/api/v1/artifacts/${next.manifest.coordinates}`)).status, 404);
    equal(await exists(blobPath(cluster, keeper.id, next.manifest.sha256)), false, "no copy left behind");
    const two = await upload(keeper, next, { replicas: 2 });
    equal(two.status, 201, JSON.stringify(two.body));
    deepStrictEqual([...two.body.record.holders].sort(), [keeper.id, other.id].sort());

    // The killed node comes back: its own copy survived on disk, and it fetches what it missed on demand.
    await n1.start();
    await cluster.waitFor(
      "n1 to see 1.0.1",
      async () => (await n1.json(`/api/v1/artifacts/${next.manifest.coordinates}`)).status === 200,
    );
    equal((await download(n1, COORDS)).source, "local");
    const missed = await download(n1, next.manifest.coordinates);
    equal(missed.status, 200);
    deepStrictEqual(missed.bytes, next.bundle);
    ok([keeper.id, other.id].includes(missed.source!), `fetched from a holder, not ${missed.source}`);
  } finally {
    await cluster.close();
  }
});

Deno.test("repository: versions are immutable, corrupt blobs are detected and repaired, delete drops the blob everywhere", async () => {
  const built = await greeter();
  const cluster = await TestCluster.start(3);
  try {
    await fullyConnected(cluster);
    const [n1, n2, n3] = cluster.nodes;
    const sha = built.manifest.sha256;
    const first = await upload(n1, built, { url: COORDS });
    equal(first.status, 201, JSON.stringify(first.body));
    deepStrictEqual([...first.body.record.holders].sort(), ["n1", "n2", "n3"], "default replicas: 3 of 3");

    // The same content again, through another node: a no-op that returns the same record.
    const again = await upload(n2, built);
    equal(again.status, 200);
    deepStrictEqual(again.body, { ...first.body, created: false });
    // Other content under the same version: 409, and the stored version is untouched.
    const other = await variant(COORDS, "// changed\n");
    const conflict = await upload(n3, other);
    equal(conflict.status, 409);
    match(conflict.body.detail, /already published with other content .* versions are immutable/);
    deepStrictEqual((await download(n3, COORDS)).bytes, built.bundle);

    const versions = await n3.json<{ versions: string[] }>(
      "/api/v1/artifacts/org.example.repo:greeter/versions",
    );
    deepStrictEqual(versions.body.versions, ["1.0.0"]);
    const list = await n2.json<{ items: { coordinates: string; sha256: string }[] }>("/api/v1/artifacts");
    deepStrictEqual(list.body.items.map((i) => [i.coordinates, i.sha256]), [[COORDS, sha]]);

    // A blob corrupted on n2's disk: detected when n2 serves it, quarantined, refetched from a peer.
    await Deno.writeFile(blobPath(cluster, "n2", sha), new TextEncoder().encode("export default 666;\n"));
    const repaired = await download(n2, COORDS);
    equal(repaired.status, 200);
    deepStrictEqual(repaired.bytes, built.bundle, "the caller never sees the corrupt bytes");
    ok(["n1", "n3"].includes(repaired.source!), `refetched from a peer, not ${repaired.source}`);
    deepStrictEqual(await Deno.readFile(blobPath(cluster, "n2", sha)), built.bundle, "the good copy is back");
    const quarantine = [...Deno.readDirSync(`${cluster.root}/n2/blobs/quarantine`)];
    equal(quarantine.length, 1);
    const status = await n2.json<{ repository?: { corruptDetected: number } }>("/api/v1/status");
    const repository = status.body.repository ??
      (status.body as { features?: { repository: { corruptDetected: number } } }).features?.repository;
    equal(repository?.corruptDetected, 1);

    // The fetch path: a second version on two nodes; the first holder's copy rots. The node without a copy
    // asks that holder first, is told its copy is corrupt, and gets a good one from the second holder, while
    // the first holder repairs its own copy in the background.
    const v2 = await variant("org.example.repo:greeter:2.0.0", "// 2.0.0\n");
    const pushed = await upload(n1, v2, { replicas: 2 });
    equal(pushed.status, 201, JSON.stringify(pushed.body));
    const [firstHolder, secondHolder] = pushed.body.record.holders as string[];
    const outsider = cluster.nodes.find((n) => !pushed.body.record.holders.includes(n.id))!;
    await Deno.writeFile(
      blobPath(cluster, firstHolder, v2.manifest.sha256),
      new Uint8Array(v2.bundle.length),
    );
    const viaFetch = await download(outsider, v2.manifest.coordinates);
    equal(viaFetch.status, 200);
    deepStrictEqual(viaFetch.bytes, v2.bundle);
    equal(viaFetch.source, secondHolder);
    await cluster.waitFor("the first holder to repair its copy", async () => {
      const bytes = await Deno.readFile(blobPath(cluster, firstHolder, v2.manifest.sha256)).catch(() => null);
      return bytes !== null && (await sha256Hex(bytes)) === v2.manifest.sha256;
    });

    // Delete: the record goes, and every node drops the blob.
    const deleted = await n3.api(`/api/v1/artifacts/${COORDS}`, { method: "DELETE" });
    equal(deleted.status, 200);
    equal((await deleted.json()).deleted, COORDS);
    for (const node of cluster.nodes) {
      await cluster.waitFor(`${node.id} to drop the deleted blob`, async () => {
        const gone = (await node.json(`/api/v1/artifacts/${COORDS}`)).status === 404;
        return gone && !(await exists(blobPath(cluster, node.id, sha)));
      });
    }
    equal((await download(n1, COORDS)).status, 404);
    const missing = await n1.api(`/api/v1/artifacts/${COORDS}`, { method: "DELETE" });
    equal(missing.status, 404);
    await missing.body?.cancel();
    // Deleted means gone: the version can be published again, with other content this time.
    equal((await upload(n2, other)).status, 201);
  } finally {
    await cluster.close();
  }
});

Deno.test("repository: every bad upload gets a precise 4xx and nothing is stored", async () => {
  const built = await greeter();
  const limit = 64 * 1024;
  const cluster = await TestCluster.start(1, { extraArgs: ["--artifact-max-bytes", String(limit)] });
  try {
    await cluster.waitForLeader();
    const [node] = cluster.nodes;
    const expectProblem = async (
      result: Promise<{ status: number; body: Record<string, unknown> }>,
      status: number,
      reason: string | undefined,
      detail: RegExp,
    ) => {
      const { status: got, body } = await result;
      equal(got, status, JSON.stringify(body));
      if (reason) equal(body.reason, reason, JSON.stringify(body));
      match(String(body.detail), detail);
    };

    const notMultipart = node.api(`/api/v1/artifacts`, {
      method: "POST",
      body: JSON.stringify(built.manifest),
      headers: { "content-type": "application/json" },
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
    await expectProblem(notMultipart, 400, "not_a_slice", /expected multipart\/form-data/);
    await expectProblem(upload(node, built, { bundle: null }), 400, "not_a_slice", /no bundle part/);
    const longer = { manifest: built.manifest, bundle: (await variant(COORDS, "//x")).bundle };
    await expectProblem(upload(node, longer), 400, "not_a_slice", /bytes but the manifest describes one of/);

    const invalid = {
      ...built.manifest,
      methods: ["greet", "greet"],
      calls: { x: { artifact: "nope", range: "^1" } },
    };
    const badManifest = await upload(node, built, { manifestText: JSON.stringify(invalid) });
    equal(badManifest.status, 400);
    equal(badManifest.body.reason, "manifest_invalid");
    deepStrictEqual(badManifest.body.problems.map((p: { path: string }) => p.path), [
      "methods[1]",
      "calls.x.artifact",
    ]);
    await expectProblem(
      upload(node, built, { manifestText: "{not json" }),
      400,
      "manifest_invalid",
      /not JSON/,
    );

    const flipped = built.bundle.slice();
    flipped[flipped.length - 2] = flipped[flipped.length - 2] === 0x41 ? 0x42 : 0x41;
    await expectProblem(
      upload(node, { manifest: built.manifest, bundle: flipped }),
      400,
      "hash_mismatch",
      /sha-256 is [0-9a-f]{64} but the manifest says/,
    );
    await expectProblem(
      upload(node, built, { headers: { "x-aether-sha256": "0".repeat(64) } }),
      400,
      "hash_mismatch",
      /declared 0{64}/,
    );
    await expectProblem(
      upload(node, built, { url: "org.example.repo:greeter:9.9.9" }),
      400,
      "coordinates_mismatch",
      /URL names org.example.repo:greeter:9.9.9 but the manifest is for org.example.repo:greeter:1.0.0/,
    );
    await expectProblem(
      upload(node, built, { url: "not-coordinates" }),
      400,
      undefined,
      /not group:artifact:version/,
    );
    await expectProblem(
      upload(node, built, { replicas: 0 }),
      400,
      undefined,
      /replicas: "0" is not a whole number/,
    );
    await expectProblem(
      upload(node, built, { replicas: 2 }),
      400,
      undefined,
      /replicas is 2 but the cluster has 1/,
    );

    const big = await variant("org.example.repo:greeter:3.0.0", `/*${"x".repeat(limit)}*/`);
    await expectProblem(
      upload(node, big),
      413,
      "too_large",
      new RegExp(`over this node's limit of ${limit} bytes`),
    );
    const huge = await variant("org.example.repo:greeter:3.0.1", `/*${"x".repeat(limit + 1024 * 1024)}*/`);
    await expectProblem(upload(node, huge), 413, "too_large", /over this node's limit/);

    // Nothing of the above is stored: no record, no blob, no temporary file.
    deepStrictEqual((await node.json<{ items: unknown[] }>("/api/v1/artifacts")).body.items, []);
    deepStrictEqual(await blobFiles(cluster, "n1"), []);
    deepStrictEqual([...Deno.readDirSync(`${cluster.root}/n1/blobs/tmp`)], []);
    // And a good upload still works.
    equal((await upload(node, built)).status, 201);
    deepStrictEqual(await blobFiles(cluster, "n1"), [built.manifest.sha256]);
  } finally {
    await cluster.close();
  }
});

Deno.test("repository: delete is refused while a blueprint or target uses the version, naming them", async () => {
  const built = await greeter();
  const dataDir = await Deno.makeTempDir({ prefix: "aether-repo-inuse-" });
  const secretFile = `${dataDir}.secret`;
  await Deno.writeTextFile(secretFile, "repository-in-use-test-secret");
  const token = testAdminToken();
  await Deno.writeTextFile(`${dataDir}.token`, token);
  const auth = { authorization: `Bearer ${token}` };
  // A real single-member node in this process, so the test can write blueprint and target records through the
  // node's own replicated write path (operators may write only under app/).
  const flags = parseNodeFlags([
    ...["--id", "n1", "--peers", "n1@127.0.0.1:0", "--data-dir", dataDir, "--secret-file", secretFile],
    ...["--api-port", "0", "--http-port", "0", "--log-level", "warn"],
    ...["--bootstrap-token-file", `${dataDir}.token`],
  ]);
  const node = await startNode(
    flags,
    new TextEncoder().encode("repository-in-use-test-secret"),
    createLogger({ level: "warn" }),
  );
  const ctx = node.core;
  try {
    const api = `http://127.0.0.1:${node.ports.api}/api/v1`;
    const deadline = Date.now() + 20_000;
    while (!ctx.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const form = new FormData();
    form.set("manifest", JSON.stringify(built.manifest));
    form.set("bundle", new Blob([built.bundle as Uint8Array<ArrayBuffer>]));
    const pushed = await fetch(`${api}/artifacts`, { method: "POST", body: form, headers: auth });
    equal(pushed.status, 201, await pushed.text());

    const del = async () => {
      const response = await fetch(`${api}/artifacts/${COORDS}`, { method: "DELETE", headers: auth });
      return { status: response.status, body: await response.json() };
    };
    const blueprintKey = kvKeys.blueprint("org.example.repo:shop:1.0.0");
    await ctx.kv.write({
      type: "put",
      key: blueprintKey,
      value: encodeValue("blueprint", {
        id: "org.example.repo:shop:1.0.0",
        slices: [{ artifact: COORDS, instances: 1, requires: [], transitive: false }],
        publishedAt: Date.now(),
      }),
    });
    const targetKey = kvKeys.target("org.example.repo:greeter");
    await ctx.kv.write({
      type: "put",
      key: targetKey,
      value: encodeValue("target", { version: "1.0.0", instances: 0, owners: [], updatedAt: Date.now() }),
    });
    const inUse = await del();
    equal(inUse.status, 409);
    match(
      inUse.body.detail,
      /in use by blueprint org.example.repo:shop:1.0.0; target org.example.repo:greeter/,
    );
    ok(inUse.body.usedBy.includes("blueprint org.example.repo:shop:1.0.0"));
    ok(inUse.body.usedBy.includes("target org.example.repo:greeter"));

    await ctx.kv.write({ type: "delete", key: blueprintKey });
    const targetOnly = await del();
    equal(targetOnly.status, 409);
    notEqual(targetOnly.body.detail.indexOf("target org.example.repo:greeter"), -1);
    equal(targetOnly.body.detail.indexOf("blueprint"), -1);

    // Another version in the target no longer pins this one.
    await ctx.kv.write({
      type: "put",
      key: targetKey,
      value: encodeValue("target", { version: "2.0.0", instances: 0, owners: [], updatedAt: Date.now() }),
    });
    const done = await del();
    equal(done.status, 200, JSON.stringify(done.body));
    equal(
      await fetch(`${api}/artifacts/${COORDS}`, { headers: auth }).then(async (
        r,
      ) => (await r.body?.cancel(), r.status)),
      404,
    );
  } finally {
    await node.stop();
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(secretFile);
    await Deno.remove(`${dataDir}.token`).catch(() => {});
  }
});
