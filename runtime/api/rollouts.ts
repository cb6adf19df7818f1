/**
 * Rollouts under /api/v1 (the leader drives them: runtime/control/rollout.ts):
 *
 *   GET  /rollouts                          every slice's rollout (the last one, finished or not)
 *   GET  /rollouts/{group:artifact}         one rollout, with each version's instances and weight now
 *   POST /rollouts                          {artifact, version, strategy, steps?, maxSurge?, maxUnavailable?,
 *                                           scaleDownDelayMs?, autoPromote?, analysis?}: starts one; 409 while
 *                                           the slice has an unfinished rollout
 *   POST /rollouts/{group:artifact}/pause|resume|promote|abort
 *
 * Each write compares the record it read (a concurrent change gives 409, never a lost update).
 */

import { Hono } from "hono";
import { AetherError, formatBase, parseArtifactBase } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvEntry } from "../kv/mod.ts";
import type { MetricsView } from "../metrics/mod.ts";
import {
  decodeValue,
  encodeValue,
  isRolloutFinished,
  KEY_PREFIXES,
  kvKeys,
  parseKey,
  type RolloutRecord,
  type RoutingRecord,
} from "../model/mod.ts";
import {
  applyRolloutAction,
  newRolloutRecord,
  parseRolloutSpec,
  readRollouts,
  ROLLOUT_ACTIONS,
} from "../control/mod.ts";

const MAX_BODY_BYTES = 16 * 1024;

/** What the rollout routes read besides KV: the clock, and the metrics for each version's figures. */
export interface RolloutRouteOptions {
  nowMs?: () => number;
  metrics?: Pick<MetricsView, "invocations">;
}

export function rolloutRoutes(kv: KvAccess, options: RolloutRouteOptions = {}): Hono {
  const nowMs = options.nowMs ?? Date.now;
  const snapshot = (kv: KvAccess, slice: string) => versionsNow(kv, slice, options.metrics, nowMs());
  const app = new Hono();
  const reader = { range: (prefix: string) => kv.range(prefix).items };

  app.get("/rollouts", (c) =>
    c.json({
      items: readRollouts(reader).map(({ slice, record }) => view(slice, record, snapshot(kv, slice))),
    }));

  app.get("/rollouts/:artifact", async (c) => {
    const slice = sliceParam(c.req.param("artifact"));
    const entry = await kv.get(kvKeys.rollout(slice));
    if (!entry) throw new AetherError("not_found", `${slice} has no rollout`);
    return c.json(view(slice, decodeValue("rollout", entry.value), snapshot(kv, slice)));
  });

  app.post("/rollouts", async (c) => {
    const body = await jsonBody(c.req.raw);
    const slice = sliceParam(body.artifact, "artifact");
    const newVersion = body.version;
    if (typeof newVersion !== "string") {
      throw new AetherError("bad_request", `version: expected the new version, e.g. "1.1.0"`, {
        field: "version",
      });
    }
    const spec = parseRolloutSpec(body, "rollout", ["artifact", "version"]);
    const targetEntry = await kv.get(kvKeys.target(slice));
    if (!targetEntry) {
      throw new AetherError(
        "not_found",
        `${slice} is not deployed; deploy it first (a rollout replaces a version)`,
      );
    }
    const target = decodeValue("target", targetEntry.value);
    if (target.version === newVersion) {
      throw new AetherError("conflict", `${slice} already runs ${newVersion}`, { field: "version" });
    }
    if (!(await kv.get(kvKeys.artifact(`${slice}:${newVersion}`)))) {
      throw new AetherError(
        "bad_request",
        `version: ${slice}:${newVersion} is not published (artifact push it)`,
        {
          field: "version",
        },
      );
    }
    const key = kvKeys.rollout(slice);
    const existing = await kv.get(key);
    if (existing) {
      const record = decodeValue("rollout", existing.value);
      if (!isRolloutFinished(record.phase)) {
        throw new AetherError(
          "conflict",
          `${slice} has a ${record.strategy} rollout to ${record.newVersion} in phase ${record.phase}; ` +
            `abort it or wait until it ends (at most one rollout per slice)`,
        );
      }
    }
    if (await kv.get(kvKeys.routing(slice))) {
      throw new AetherError(
        "conflict",
        `${slice} has version weights set by hand; clear them first (aether routing clear ${slice})`,
      );
    }
    const record = newRolloutRecord(spec, {
      stableVersion: target.version,
      newVersion,
      instances: target.instances,
      nowMs: nowMs(),
    });
    const { revision } = await compareAndPut(kv, key, existing, record, targetEntry);
    return c.json({ ...view(slice, record, snapshot(kv, slice)), revision }, 201);
  });

  for (const action of ROLLOUT_ACTIONS) {
    app.post(`/rollouts/:artifact/${action}`, async (c) => {
      const slice = sliceParam(c.req.param("artifact"));
      const key = kvKeys.rollout(slice);
      const entry = await kv.get(key);
      if (!entry) throw new AetherError("not_found", `${slice} has no rollout`);
      const record = decodeValue("rollout", entry.value);
      if (isRolloutFinished(record.phase)) {
        throw new AetherError(
          "conflict",
          `${slice}'s rollout to ${record.newVersion} already ended ${record.phase}`,
        );
      }
      const next = applyRolloutAction(record, action, nowMs());
      const { revision } = await compareAndPut(kv, key, entry, next);
      return c.json({ ...view(slice, next, snapshot(kv, slice)), revision });
    });
  }

  return app;
}

async function compareAndPut(
  kv: KvAccess,
  key: string,
  existing: KvEntry | undefined,
  record: RolloutRecord,
  alsoUnchanged?: KvEntry,
): Promise<{ revision: number }> {
  const compare = [{ key, modRevision: existing?.modRevision ?? 0 }];
  if (alsoUnchanged) compare.push({ key: alsoUnchanged.key, modRevision: alsoUnchanged.modRevision });
  const outcome = await kv.write({
    type: "txn",
    compare,
    success: [{ op: "put", key, value: encodeValue("rollout", record) }],
    failure: [],
  });
  if (outcome.succeeded === false) {
    throw new AetherError("conflict", `${key} changed meanwhile; read it again and retry`);
  }
  return { revision: outcome.revision };
}

interface VersionNow {
  version: string;
  role: "stable" | "new";
  instances: number;
  active: number;
  weight?: number;
  /** Over the current step (at most the last 15 minutes), from the metrics this node holds. */
  figures?: VersionFigures;
}

interface VersionFigures {
  windowSeconds: number;
  /** Calls per second, over every method. */
  rate: number;
  /** Share of calls that succeeded (absent without calls). */
  successRate?: number;
  /** The highest p99 of its methods, ms. */
  p99Ms?: number;
}

/** The longest window the figures cover (the metrics history keeps per-second points this long). */
const MAX_FIGURES_WINDOW_SECONDS = 900;

/** A version's calls over the current step, summed over its methods. */
function figuresOf(
  metrics: Pick<MetricsView, "invocations"> | undefined,
  slice: string,
  version: string,
  windowSeconds: number,
): VersionFigures | undefined {
  if (!metrics) return undefined;
  const rows = metrics.invocations(windowSeconds).filter((i) =>
    i.artifact === slice && i.version === version
  );
  const rate = rows.reduce((a, r) => a + r.rate, 0);
  const errorRate = rate > 0 ? rows.reduce((a, r) => a + r.rate * r.errorRate, 0) / rate : undefined;
  const p99s = rows.flatMap((r) => (r.p99Ms !== undefined ? [r.p99Ms] : []));
  return {
    windowSeconds,
    rate,
    ...(errorRate !== undefined ? { successRate: 1 - errorRate } : {}),
    ...(p99s.length > 0 ? { p99Ms: Math.max(...p99s) } : {}),
  };
}

/** Instances, weights and figures of both versions now, from this node's copy of the state and metrics. */
function versionsNow(
  kv: KvAccess,
  slice: string,
  metrics: Pick<MetricsView, "invocations"> | undefined,
  nowMs: number,
): (record: RolloutRecord) => VersionNow[] {
  return (record) => {
    const windowSeconds = Math.max(
      1,
      Math.min(MAX_FIGURES_WINDOW_SECONDS, Math.round((nowMs - record.stepStartedAt) / 1000)),
    );
    const counts = new Map<string, { instances: number; active: number }>();
    for (const entry of kv.range(KEY_PREFIXES.instances).items) {
      const key = parseKey(entry.key);
      if (key.family !== "instance" || `${key.artifact.group}:${key.artifact.artifact}` !== slice) continue;
      const state = decodeValue("instance", entry.value).state;
      if (state === "FAILED") continue;
      const c = counts.get(key.artifact.version) ?? { instances: 0, active: 0 };
      c.instances++;
      if (state === "ACTIVE") c.active++;
      counts.set(key.artifact.version, c);
    }
    const routingEntry = kv.range(kvKeys.routing(slice)).items.find((e) => e.key === kvKeys.routing(slice));
    const routing: RoutingRecord | undefined = routingEntry
      ? decodeValue("routing", routingEntry.value)
      : undefined;
    const weight = (version: string) =>
      routing === undefined
        ? undefined
        : version === routing.oldVersion
        ? routing.oldWeight
        : version === routing.newVersion
        ? routing.newWeight
        : undefined;
    return ([[record.stableVersion, "stable"], [record.newVersion, "new"]] as const).map(
      ([version, role]) => {
        const w = weight(version);
        // Figures describe the step under way; a finished rollout has none.
        const figures = record.endedAt === undefined
          ? figuresOf(metrics, slice, version, windowSeconds)
          : undefined;
        return {
          version,
          role,
          ...(counts.get(version) ?? { instances: 0, active: 0 }),
          ...(w !== undefined ? { weight: w } : {}),
          ...(figures ? { figures } : {}),
        };
      },
    );
  };
}

function view(slice: string, record: RolloutRecord, versions: (r: RolloutRecord) => VersionNow[]) {
  return { artifact: slice, ...record, versions: versions(record) };
}

function sliceParam(value: unknown, field = "artifact"): string {
  if (typeof value !== "string" || value.split(":").length !== 2) {
    throw new AetherError(
      "bad_request",
      `${field}: expected "group:artifact", got ${JSON.stringify(value)}`,
      {
        field,
      },
    );
  }
  return formatBase(parseArtifactBase(value, field));
}

async function jsonBody(request: Request): Promise<Record<string, unknown>> {
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) {
    throw new AetherError("too_large", `body: over ${MAX_BODY_BYTES} bytes`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new AetherError("bad_request", `body: not JSON (${(e as Error).message})`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AetherError("bad_request", "body: expected a JSON object {artifact, version, strategy, ...}");
  }
  return body as Record<string, unknown>;
}
