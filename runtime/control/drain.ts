/**
 * Cordon, drain and uncordon of a node: the operator's side. The records live in KV
 * (`nodes/{node}/cordon`, runtime/model/nodes.ts); the leader's deployment reducer
 * (runtime/deployment/cluster_manager.ts) acts on them: a cordoned node takes no new instances, a draining
 * one also has its instances moved off one at a time, each replacement ACTIVE before the old one stops, so no
 * slice drops below its count (nor its disruption budget). Nothing here stops an instance itself.
 */

import { AetherError, type NodeId } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import { type CordonRecord, decodeValue, encodeValue, KEY_PREFIXES, kvKeys, parseKey } from "../model/mod.ts";

/** One node as `aether node list` shows it. */
export interface NodeRow {
  id: NodeId;
  /** Whether this node's mesh sees it connected; absent for a node known only from KV. */
  connected?: boolean;
  labels: Record<string, string>;
  cordon?: CordonRecord;
  /** Instance records on the node, by lifecycle state. */
  instances: Record<string, number>;
  /** A draining node that no longer carries any instance: it can be stopped without a failed request. */
  drained: boolean;
}

interface Reader {
  range(prefix: string): { items: { key: string; value: Uint8Array }[] };
}

/** Every node the members list or KV knows, with labels, cordon and instances (sorted by id). */
export function readNodes(kv: Reader, members: readonly { id: string; connected: boolean }[]): NodeRow[] {
  const rows = new Map<NodeId, NodeRow>();
  const row = (id: NodeId) => {
    let r = rows.get(id);
    if (!r) rows.set(id, r = { id, labels: {}, instances: {}, drained: false });
    return r;
  };
  for (const m of members) row(m.id).connected = m.connected;
  for (const e of kv.range(KEY_PREFIXES.nodes).items) {
    const key = parseKey(e.key);
    if (key.family === "nodeLabels") row(key.node).labels = decodeValue("nodeLabels", e.value).labels;
    else if (key.family === "cordon") row(key.node).cordon = decodeValue("cordon", e.value);
  }
  for (const e of kv.range(KEY_PREFIXES.instances).items) {
    const node = e.key.split("/")[1];
    const state = decodeValue("instance", e.value).state;
    const r = row(node);
    r.instances[state] = (r.instances[state] ?? 0) + 1;
  }
  for (const r of rows.values()) {
    r.drained = r.cordon?.mode === "drain" && Object.keys(r.instances).length === 0;
  }
  return [...rows.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export interface CordonRequest {
  node: NodeId;
  mode: CordonRecord["mode"];
  by?: string;
  reason?: string;
  nowMs: number;
}

/**
 * Cordons or drains `node` (a drain of a cordoned node turns it into a drain). Refused (409) when no other
 * live node would be left to take instances, since the drain could never finish and new slices could not be
 * placed; 404 for a node neither the members list nor KV knows.
 */
export async function cordonNode(
  kv: KvAccess,
  members: readonly { id: string; connected: boolean }[],
  request: CordonRequest,
): Promise<{ record: CordonRecord; revision: number }> {
  const rows = readNodes(kv, members);
  const target = rows.find((r) => r.id === request.node);
  if (!target) {
    throw new AetherError(
      "not_found",
      `node ${request.node} is not a member of the cluster (members: ${rows.map((r) => r.id).join(", ")})`,
      { field: "node" },
    );
  }
  const others = rows.filter((r) => r.id !== request.node && r.connected && !r.cordon);
  if (others.length === 0) {
    throw new AetherError(
      "conflict",
      `${request.mode} ${request.node}: no other connected, uncordoned node would be left to run instances; ` +
        `uncordon another node first`,
      { node: request.node },
    );
  }
  const key = kvKeys.cordon(request.node);
  const current = await kv.get(key);
  const record: CordonRecord = { mode: request.mode, since: request.nowMs };
  if (current) {
    const before = decodeValue("cordon", current.value);
    if (before.mode === request.mode) return { record: before, revision: current.modRevision };
    record.since = before.since;
  }
  if (request.by !== undefined) record.by = request.by;
  if (request.reason !== undefined) record.reason = request.reason;
  const outcome = await kv.write({
    type: "txn",
    compare: [{ key, modRevision: current?.modRevision ?? 0 }],
    success: [{ op: "put", key, value: encodeValue("cordon", record) }],
    failure: [],
  });
  if (outcome.succeeded === false) {
    throw new AetherError("conflict", `${key} changed meanwhile; read it again and retry`);
  }
  return { record, revision: outcome.revision };
}

/** Removes the cordon (and the drain) of `node`; the node takes new instances again, and rebalancing fills it. */
export async function uncordonNode(kv: KvAccess, node: NodeId): Promise<{ wasCordoned: boolean }> {
  const key = kvKeys.cordon(node);
  const current = await kv.get(key);
  if (!current) return { wasCordoned: false };
  await kv.write({ type: "delete", key });
  return { wasCordoned: true };
}

/** How often the label publisher tries again until its record is in KV. */
const LABEL_RETRY_MS = 1_000;

/**
 * Publishes this node's labels (`--labels zone=a,disk=ssd`) as `nodes/{node}/labels` once the node is ready,
 * trying again every second until the record in KV says the same (a write may fail while there is no quorum).
 * An unchanged record is not rewritten, so a restart with the same labels writes nothing.
 */
export function startLabelPublisher(o: {
  kv: Pick<KvAccess, "get" | "write">;
  node: NodeId;
  labels: Record<string, string>;
  ready: () => boolean;
  nowMs?: () => number;
  log: { warn(message: string, fields?: Record<string, unknown>): void };
}): { stop(): void; readonly published: boolean } {
  const key = kvKeys.nodeLabels(o.node);
  const wanted = JSON.stringify(Object.entries(o.labels).sort());
  let published = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const attempt = async () => {
    timer = undefined;
    if (stopped) return;
    try {
      if (o.ready()) {
        const current = await o.kv.get(key);
        const same = current !== undefined &&
          JSON.stringify(Object.entries(decodeValue("nodeLabels", current.value).labels).sort()) === wanted;
        if (!same) {
          const record = { labels: o.labels, updatedAt: (o.nowMs ?? Date.now)() };
          await o.kv.write({ type: "put", key, value: encodeValue("nodeLabels", record) });
        }
        published = true;
        return;
      }
    } catch (e) {
      o.log.warn("node labels not published yet; trying again", { error: e });
    }
    if (!stopped) timer = setTimeout(attempt, LABEL_RETRY_MS);
  };
  timer = setTimeout(attempt, 0);
  return {
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
    get published() {
      return published;
    },
  };
}
