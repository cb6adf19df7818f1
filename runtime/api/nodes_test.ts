/**
 * The node routes over a real KvState (the replicated store's state machine, written through a thin
 * KvAccess): cordon, drain, uncordon, the listing with labels and drain progress, and bad input.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { problemResponse, toAetherError } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import { type KvCommand, KvState } from "../kv/mod.ts";
import { encodeValue, kvKeys } from "../model/mod.ts";
import type { MemberView } from "./deps.ts";
import { nodeRoutes } from "./nodes.ts";

function setup(members: MemberView[]) {
  const state = new KvState();
  const kv = {
    maxValueBytes: 1 << 20,
    write(command: KvCommand) {
      const result = state.apply(command, []);
      if (!result.ok) return Promise.resolve({ revision: state.revision, succeeded: false });
      return Promise.resolve({ revision: state.revision, succeeded: result.succeeded });
    },
    get: (key: string) => Promise.resolve(state.get(key)),
    range: (prefix: string) => ({ revision: state.revision, items: state.range(prefix) }),
  } as unknown as KvAccess;
  const app = new Hono();
  app.onError((e) => problemResponse(toAetherError(e)));
  app.route("/api/v1", nodeRoutes({ kv, status: () => ({ members }) as never }, () => 5_000));
  return { app, state };
}

const post = (app: Hono, path: string, body?: string) =>
  app.request(path, { method: "POST", ...(body !== undefined ? { body } : {}) });

Deno.test("nodes API: drain, progress, uncordon; labels are listed", async () => {
  const { app, state } = setup([{ id: "n1", connected: true }, { id: "n2", connected: true }]);
  state.apply({
    type: "put",
    key: kvKeys.nodeLabels("n2"),
    value: encodeValue("nodeLabels", { labels: { zone: "b" }, updatedAt: 1 }),
  }, []);
  state.apply({
    type: "put",
    key: kvKeys.instance("n2", "g:a:1.0.0", 0),
    value: encodeValue("instance", { state: "ACTIVE", updatedAt: 1 }),
  }, []);
  let res = await post(app, "/api/v1/nodes/n2/drain", JSON.stringify({ reason: "kernel upgrade" }));
  assert.equal(res.status, 200);
  const drained = await res.json();
  assert.deepEqual(drained.cordon, { mode: "drain", since: 5_000, reason: "kernel upgrade" });
  res = await app.request("/api/v1/nodes/n2");
  let row = await res.json();
  assert.deepEqual(
    { labels: row.labels, instances: row.instances, drained: row.drained },
    { labels: { zone: "b" }, instances: { ACTIVE: 1 }, drained: false },
  );
  state.apply({ type: "delete", key: kvKeys.instance("n2", "g:a:1.0.0", 0) }, []);
  row = await (await app.request("/api/v1/nodes/n2")).json();
  assert.equal(row.drained, true);
  const list = await (await app.request("/api/v1/nodes")).json();
  assert.deepEqual(list.items.map((r: { id: string }) => r.id), ["n1", "n2"]);
  res = await post(app, "/api/v1/nodes/n2/uncordon");
  assert.deepEqual(await res.json(), { node: "n2", uncordoned: true });
  assert.equal(state.get(kvKeys.cordon("n2")), undefined);
});

Deno.test("nodes API: refusals name what is wrong", async () => {
  const { app } = setup([{ id: "n1", connected: true }, { id: "n2", connected: false }]);
  const problem = async (res: Response, status: number, pattern: RegExp) => {
    assert.equal(res.status, status);
    const body = await res.json();
    assert.match(body.detail ?? body.title, pattern);
  };
  await problem(await post(app, "/api/v1/nodes/N1/drain"), 400, /node id "N1" is not a node id/);
  await problem(await post(app, "/api/v1/nodes/n9/drain"), 404, /node n9 is not a member/);
  await problem(await post(app, "/api/v1/nodes/n1/drain", "{"), 400, /body: not JSON/);
  await problem(await post(app, "/api/v1/nodes/n1/drain", `{"why":"x"}`), 400, /body.why: not a field/);
  // n2 is disconnected: draining n1 would leave nothing to run instances.
  await problem(await post(app, "/api/v1/nodes/n1/drain"), 409, /no other connected, uncordoned node/);
  await problem(await app.request("/api/v1/nodes/n7"), 404, /node n7 is not a member/);
});
