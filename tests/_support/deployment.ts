/**
 * Helpers for deployment tests and benchmarks on real node processes: build the slices in
 * tests/fixtures/deployment, push them through the repository's HTTP API, and read deployment state through
 * the management API.
 */

import type { SliceStatus } from "../../runtime/deployment/status.ts";
import { fileURLToPath } from "node:url";
import { buildSlice, type BuiltSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

export type DeployFixture =
  | "inventory"
  | "pricing"
  | "orders"
  | "checkout"
  | "audit"
  | "broken"
  | "cycle_a"
  | "cycle_b";

export const GROUP = "org.example.deploy";

const built = new Map<string, Promise<BuiltSlice>>();

/** Builds `tests/fixtures/deployment/<name>.ts` (once per process), optionally at another version. */
export function deployFixture(name: DeployFixture, version?: string): Promise<BuiltSlice> {
  const key = `${name}@${version ?? ""}`;
  let result = built.get(key);
  if (!result) {
    const path = fileURLToPath(new URL(`../fixtures/deployment/${name}.ts`, import.meta.url));
    built.set(key, result = buildSlice(path, version ? { version } : {}));
  }
  return result;
}

/** Publishes a built slice through `POST /api/v1/artifacts` of `node` (201 new, 200 already there). */
export async function pushArtifact(node: NodeProcess, slice: BuiltSlice): Promise<void> {
  const form = new FormData();
  form.append("manifest", JSON.stringify(slice.manifest));
  form.append("bundle", new Blob([slice.bundle as Uint8Array<ArrayBuffer>]), "bundle.js");
  const response = await node.api(`/api/v1/artifacts`, { method: "POST", body: form });
  const text = await response.text();
  if (response.status !== 201 && response.status !== 200) {
    throw new Error(`push of ${slice.manifest.coordinates} answered ${response.status}: ${text}`);
  }
}

/** Builds and pushes fixtures. */
export async function publishFixtures(node: NodeProcess, names: DeployFixture[]): Promise<void> {
  for (const name of names) await pushArtifact(node, await deployFixture(name));
}

export type { InstanceStatus, SliceStatus } from "../../runtime/deployment/status.ts";

export async function sliceStatuses(node: NodeProcess): Promise<SliceStatus[]> {
  const { status, body } = await node.json<{ slices: SliceStatus[] }>("/api/v1/slices");
  if (status !== 200) throw new Error(`GET /api/v1/slices answered ${status}: ${JSON.stringify(body)}`);
  return body.slices;
}

/** `{ slice: "n1 ACTIVE, n2 ACTIVE" }`-style summary for assertion messages. */
export function describe(slices: SliceStatus[]): string {
  return slices.map((s) =>
    `${s.slice} ${s.active}/${s.desired}: ${
      s.instances.map((i) => `${i.node}/${i.n} ${i.version} ${i.state}${i.reason ? ` (${i.reason})` : ""}`)
        .join(", ")
    }${s.backoff ? ` backoff ${JSON.stringify(s.backoff)}` : ""}`
  ).join("\n");
}

/**
 * True when every slice in `want` (short name -> instance count) has exactly that many instances, all ACTIVE
 * at the target version on connected nodes, and (with `only`) no other slice exists.
 */
export function settledAs(slices: SliceStatus[], want: Record<string, number>, only = true): boolean {
  const byName = new Map(slices.map((s) => [s.slice.replace(`${GROUP}:`, ""), s]));
  for (const [name, count] of Object.entries(want)) {
    const s = byName.get(name);
    if (count === 0) {
      if (s && s.instances.length > 0) return false;
      continue;
    }
    if (!s || s.desired !== count || s.active !== count || s.instances.length !== count) return false;
    if (!s.instances.every((i) => i.state === "ACTIVE" && i.connected)) return false;
  }
  if (only) {
    for (const [name, s] of byName) if (!(name in want) && s.instances.length > 0) return false;
  }
  return true;
}

export async function postJson(node: NodeProcess, path: string, body: unknown) {
  return await node.json<Record<string, unknown>>(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

export async function postBlueprint(node: NodeProcess, toml: string, query = "") {
  const response = await node.api(`/api/v1/blueprints${query}`, { method: "POST", body: toml });
  const text = await response.text();
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    body: (text ? JSON.parse(text) : undefined) as Record<string, unknown>,
  };
}

export interface InstanceEvent {
  revision: number;
  key: string;
  type: "put" | "delete";
  /** The record's state for a put. */
  state?: string;
  /** The record's `updatedAt` for a put (the writer's clock, ms since the epoch). */
  updatedAt?: number;
}

/**
 * Every change under `instances/` so far, from the node's watch history. A watch never ends by itself: the
 * replay is read up to the newest revision of the instance keys that exist now, or until the stream has been
 * quiet for a moment.
 */
export async function instanceHistory(node: NodeProcess): Promise<InstanceEvent[]> {
  const { body } = await node.json<{ items: { revision: number }[] }>(
    "/api/v1/kv?prefix=instances/&limit=10000",
  );
  const until = Math.max(0, ...body.items.map((i) => i.revision));
  const controller = new AbortController();
  // A slow first answer on a busy machine is not the end of the replay; a pause after it is.
  let idle = setTimeout(() => controller.abort(), 10_000);
  const events: InstanceEvent[] = [];
  try {
    const response = await node.api(`/api/v1/kv-watch?prefix=instances/&fromRevision=1`, {
      signal: controller.signal,
    });
    let buffer = "";
    for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
      clearTimeout(idle);
      idle = setTimeout(() => controller.abort(), 2_000);
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").find((l) => l.startsWith("data:"));
        if (!data) continue;
        const event = JSON.parse(data.slice(5));
        if (event.detail) throw new Error(`watch failed: ${event.detail}`);
        const record = event.value ? JSON.parse(event.value) : undefined;
        events.push({
          revision: event.revision,
          key: event.key,
          type: event.type,
          state: record?.state,
          updatedAt: record?.updatedAt,
        });
        if (until > 0 && event.revision >= until) return events;
      }
    }
  } catch (e) {
    if (!controller.signal.aborted) throw e;
  } finally {
    clearTimeout(idle);
    controller.abort();
  }
  return events;
}
