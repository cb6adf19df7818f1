/**
 * Nodes under /api/v1 (runtime/control/drain.ts; the leader's deployment reducer acts on the records):
 *
 *   GET  /nodes                    every node: connected, labels, cordon/drain, instances by state, drained
 *   GET  /nodes/{id}               one node (drain progress: `instances`, `drained`)
 *   POST /nodes/{id}/cordon        no new instances on it; its instances stay       {reason?}
 *   POST /nodes/{id}/drain         cordon, and move every instance off it            {reason?}
 *   POST /nodes/{id}/uncordon      takes instances again (rebalancing fills it)
 *
 * Writes are audited by the auth middleware like every mutating call.
 */

import { Hono } from "hono";
import { AetherError, isNodeId } from "../core/mod.ts";
import { cordonNode, readNodes, uncordonNode } from "../control/mod.ts";
import type { ApiDeps } from "./deps.ts";

const MAX_BODY_BYTES = 4 * 1024;

export function nodeRoutes(deps: Pick<ApiDeps, "kv" | "status">, nowMs: () => number = Date.now): Hono {
  const app = new Hono();
  const rows = () => readNodes(deps.kv, deps.status().members);

  app.get("/nodes", (c) => c.json({ items: rows() }));

  app.get("/nodes/:id", (c) => {
    const id = nodeParam(c.req.param("id"));
    const row = rows().find((r) => r.id === id);
    if (!row) {
      throw new AetherError("not_found", `node ${id} is not a member of the cluster`, { field: "id" });
    }
    return c.json(row);
  });

  for (const mode of ["cordon", "drain"] as const) {
    app.post(`/nodes/:id/${mode}`, async (c) => {
      const node = nodeParam(c.req.param("id"));
      const reason = await reasonOf(c.req.raw);
      const { record, revision } = await cordonNode(deps.kv, deps.status().members, {
        node,
        mode,
        nowMs: nowMs(),
        ...(reason !== undefined ? { reason } : {}),
      });
      return c.json({ node, cordon: record, revision });
    });
  }

  app.post("/nodes/:id/uncordon", async (c) => {
    const node = nodeParam(c.req.param("id"));
    const { wasCordoned } = await uncordonNode(deps.kv, node);
    return c.json({ node, uncordoned: wasCordoned });
  });

  return app;
}

function nodeParam(id: string): string {
  if (!isNodeId(id)) {
    throw new AetherError("bad_request", `node id "${id}" is not a node id (a-z, 0-9, '-'; up to 63)`, {
      field: "id",
    });
  }
  return id;
}

/** The optional JSON body `{reason}`; an empty body is fine. */
async function reasonOf(request: Request): Promise<string | undefined> {
  const text = await request.text();
  if (text.trim() === "") return undefined;
  if (text.length > MAX_BODY_BYTES) {
    throw new AetherError("too_large", `body: at most ${MAX_BODY_BYTES} bytes`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new AetherError("bad_request", `body: not JSON (${(e as Error).message})`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AetherError("bad_request", `body: expected an object such as {"reason": "kernel upgrade"}`);
  }
  const { reason, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw new AetherError("bad_request", `body.${unknown[0]}: not a field (only "reason")`, {
      field: unknown[0],
    });
  }
  if (reason === undefined) return undefined;
  if (typeof reason !== "string" || reason.length > 1024) {
    throw new AetherError("bad_request", `body.reason: expected text of at most 1024 characters`, {
      field: "reason",
    });
  }
  return reason;
}
