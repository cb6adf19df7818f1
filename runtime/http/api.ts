/**
 * The invocation part of the management API (mounted under /api/v1):
 *
 *   GET    /routes                      the application route table: method, path, slice, slice method, the
 *                                       nodes serving it (and which of them this node reaches now)
 *   GET    /routing                     every slice's version weights
 *   GET    /routing/{group:artifact}    one slice's version weights (404 when none)
 *   POST   /routing                     {artifact: "g:a", weights: {"1.0.0": 3, "1.1.0": 1}}: the lower
 *                                       version is "old", the higher "new"; weights are integers 0..1000000,
 *                                       not both 0; both versions must be published
 *   DELETE /routing/{group:artifact}    back to unweighted routing
 *   GET    /timeouts                    every slice's configured call timeout
 *   PUT    /timeouts/{group:artifact}   {timeoutMs}: calls to the slice get this deadline (and never more)
 *   DELETE /timeouts/{group:artifact}
 *   POST   /invoke/{target}/{method}    calls a slice method with the JSON body as the request (target
 *                                       `g:a` or `g:a:v`; headers x-request-id and x-aether-timeout-ms as on
 *                                       the application port) → {requestId, ok, value | error, status?};
 *                                       header x-aether-version 1.4.0 with a `g:a` target reaches only that
 *                                       version (blue-green preview; this endpoint needs an operator token)
 *
 * Errors are AetherErrors, which the API turns into problem documents.
 */

import { Hono } from "hono";
import {
  AetherError,
  compareVersions,
  formatBase,
  isVersion,
  type NodeId,
  parseArtifactBase,
} from "../core/mod.ts";
import type { KvCommand, KvEntry } from "../kv/mod.ts";
import { encodeValue, kvKeys, type RoutingRecord } from "../model/mod.ts";
import {
  type InvokeSettings,
  isRequestId,
  MAX_CALL_TIMEOUT_MS,
  newRequestId,
  type SliceInvoker,
  timeoutKey,
} from "../invoke/mod.ts";
import type { RouteTable } from "./route_table.ts";
import { readJson, REQUEST_ID_HEADER, TIMEOUT_HEADER, VERSION_HEADER } from "./app.ts";

export interface InvokeApiDeps {
  routes(): RouteTable;
  settings: InvokeSettings;
  invoker: Pick<SliceInvoker, "invoke">;
  /** Reads this node's current state. */
  get(key: string): KvEntry | undefined;
  write(command: KvCommand): Promise<{ revision: number }>;
  isConnected(node: NodeId): boolean;
  nowMs(): number;
  maxBodyBytes: number;
}

const MAX_SETTINGS_BODY_BYTES = 16 * 1024;

export function invokeRoutes(deps: InvokeApiDeps): Hono {
  const app = new Hono();

  app.get("/routes", (c) =>
    c.json({
      routes: deps.routes().list().map((r) => ({
        httpMethod: r.httpMethod,
        path: r.path,
        slice: r.slice,
        method: r.method,
        nodes: r.nodes,
        reachable: r.nodes.filter((n) => deps.isConnected(n)),
        queryParams: r.queryParams,
      })),
    }));

  app.get(
    "/routing",
    (c) =>
      c.json({ items: deps.settings.allRouting().map(({ slice, record }) => routingView(slice, record)) }),
  );

  app.get("/routing/:artifact", (c) => {
    const slice = sliceParam(c.req.param("artifact"), "artifact");
    const record = deps.settings.routing(slice);
    if (!record) throw new AetherError("not_found", `${slice} has no version weights`);
    return c.json(routingView(slice, record));
  });

  app.post("/routing", async (c) => {
    const body = await jsonObject(c.req.raw, "routing", ["artifact", "weights"]);
    const slice = sliceParam(body.artifact, "artifact");
    const record = weightsRecord(slice, body.weights, deps.nowMs());
    for (const version of [record.oldVersion, record.newVersion]) {
      if (!deps.get(kvKeys.artifact(`${slice}:${version}`))) {
        throw new AetherError("bad_request", `weights: ${slice}:${version} is not published`, {
          field: "weights",
        });
      }
    }
    const { revision } = await deps.write({
      type: "put",
      key: kvKeys.routing(slice),
      value: encodeValue("routing", record),
    });
    return c.json({ ...routingView(slice, record), revision });
  });

  app.delete("/routing/:artifact", async (c) => {
    const slice = sliceParam(c.req.param("artifact"), "artifact");
    const key = kvKeys.routing(slice);
    if (!deps.get(key)) throw new AetherError("not_found", `${slice} has no version weights`);
    const { revision } = await deps.write({ type: "delete", key });
    return c.json({ artifact: slice, deleted: true, revision });
  });

  app.get(
    "/timeouts",
    (c) =>
      c.json({
        items: deps.settings.allTimeouts().map(({ slice, timeoutMs }) => ({ artifact: slice, timeoutMs })),
      }),
  );

  app.put("/timeouts/:artifact", async (c) => {
    const slice = sliceParam(c.req.param("artifact"), "artifact");
    const body = await jsonObject(c.req.raw, "timeouts", ["timeoutMs"]);
    const ms = body.timeoutMs;
    if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 1 || ms > MAX_CALL_TIMEOUT_MS) {
      throw new AetherError(
        "bad_request",
        `timeoutMs: ${
          JSON.stringify(ms)
        } is not a whole number of milliseconds from 1 to ${MAX_CALL_TIMEOUT_MS}`,
        { field: "timeoutMs" },
      );
    }
    const value = encodeValue("config", { value: ms, updatedAt: deps.nowMs() });
    const { revision } = await deps.write({ type: "put", key: timeoutKey(slice), value });
    return c.json({ artifact: slice, timeoutMs: ms, revision });
  });

  app.delete("/timeouts/:artifact", async (c) => {
    const slice = sliceParam(c.req.param("artifact"), "artifact");
    const key = timeoutKey(slice);
    if (!deps.get(key)) throw new AetherError("not_found", `${slice} has no configured timeout`);
    const { revision } = await deps.write({ type: "delete", key });
    return c.json({ artifact: slice, deleted: true, revision });
  });

  app.post("/invoke/:target/:method", async (c) => {
    const target = c.req.param("target");
    const method = c.req.param("method");
    const incoming = c.req.header(REQUEST_ID_HEADER);
    const requestId = incoming !== undefined && isRequestId(incoming) ? incoming : newRequestId();
    const timeoutText = c.req.header(TIMEOUT_HEADER);
    let timeoutMs: number | undefined;
    if (timeoutText !== undefined) {
      if (!/^[1-9]\d{0,8}$/.test(timeoutText) || Number(timeoutText) > MAX_CALL_TIMEOUT_MS) {
        throw new AetherError(
          "bad_request",
          `header ${TIMEOUT_HEADER}: "${timeoutText}" is not a number of milliseconds from 1 to ${MAX_CALL_TIMEOUT_MS}`,
        );
      }
      timeoutMs = Number(timeoutText);
    }
    const request = (await readJson(c.req.raw, deps.maxBodyBytes)) ?? {};
    const chosen = previewTarget(target, c.req.header(VERSION_HEADER));
    try {
      const outcome = await deps.invoker.invoke(chosen, method, request, {
        requestId,
        timeoutMs,
        from: "api",
      });
      c.header(REQUEST_ID_HEADER, requestId);
      return c.json({ requestId, ...outcome });
    } catch (e) {
      if (e instanceof AetherError) throw new AetherError(e.code, e.message, { ...e.extra, requestId });
      throw e;
    }
  });

  return app;
}

/** `g:a` plus the preview header's version → `g:a:v`; the header must agree with a target naming a version. */
function previewTarget(target: string, version: string | undefined): string {
  if (version === undefined) return target;
  if (!isVersion(version)) {
    throw new AetherError(
      "bad_request",
      `header ${VERSION_HEADER}: "${version}" is not a version like 1.2.0`,
    );
  }
  const parts = target.split(":");
  if (parts.length === 2) return `${target}:${version}`;
  if (parts.length === 3 && parts[2] !== version) {
    throw new AetherError(
      "bad_request",
      `header ${VERSION_HEADER}: "${version}" contradicts the target's version ${parts[2]} (${target})`,
    );
  }
  return target;
}

function routingView(slice: string, record: RoutingRecord) {
  return {
    artifact: slice,
    oldVersion: record.oldVersion,
    newVersion: record.newVersion,
    oldWeight: record.oldWeight,
    newWeight: record.newWeight,
    weights: { [record.oldVersion]: record.oldWeight, [record.newVersion]: record.newWeight },
    ratio: `${record.newWeight}:${record.oldWeight}`,
    updatedAt: record.updatedAt,
  };
}

function sliceParam(value: unknown, field: string): string {
  if (typeof value !== "string") {
    throw new AetherError("bad_request", `${field}: expected "group:artifact"`, { field });
  }
  if (value.split(":").length !== 2) {
    throw new AetherError("bad_request", `${field}: "${value}" is not "group:artifact" (no version)`, {
      field,
    });
  }
  return formatBase(parseArtifactBase(value, field));
}

/** `{"1.0.0": 3, "1.1.0": 1}` as a routing record: the lower version is old, the higher new. */
export function weightsRecord(slice: string, weights: unknown, nowMs: number): RoutingRecord {
  if (weights === null || typeof weights !== "object" || Array.isArray(weights)) {
    throw new AetherError(
      "bad_request",
      `weights: expected an object of two versions, e.g. {"1.0.0": 3, "1.1.0": 1}`,
      { field: "weights" },
    );
  }
  const entries = Object.entries(weights as Record<string, unknown>);
  if (entries.length !== 2) {
    throw new AetherError(
      "bad_request",
      `weights: names ${entries.length} version(s); weights are between exactly two versions of ${slice}`,
      { field: "weights" },
    );
  }
  for (const [version, weight] of entries) {
    if (!isVersion(version)) {
      throw new AetherError("bad_request", `weights: "${version}" is not a version`, {
        field: `weights.${version}`,
      });
    }
    if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 0 || weight > 1_000_000) {
      throw new AetherError(
        "bad_request",
        `weights.${version}: ${JSON.stringify(weight)} is not a whole number from 0 to 1000000`,
        { field: `weights.${version}` },
      );
    }
  }
  entries.sort(([a], [b]) => compareVersions(a, b));
  const [[oldVersion, oldWeight], [newVersion, newWeight]] = entries as Array<[string, number]>;
  if (compareVersions(oldVersion, newVersion) === 0) {
    throw new AetherError("bad_request", `weights: ${oldVersion} and ${newVersion} are the same version`, {
      field: "weights",
    });
  }
  if (oldWeight === 0 && newWeight === 0) {
    throw new AetherError(
      "bad_request",
      "weights: both weights are 0; at least one version must take traffic",
      { field: "weights" },
    );
  }
  return { oldVersion, newVersion, oldWeight, newWeight, updatedAt: nowMs };
}

async function jsonObject(
  request: Request,
  what: string,
  fields: string[],
): Promise<Record<string, unknown>> {
  const body = await readJson(request, MAX_SETTINGS_BODY_BYTES);
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AetherError("bad_request", `${what}: the body must be a JSON object with ${fields.join(", ")}`);
  }
  for (const key of Object.keys(body)) {
    if (!fields.includes(key)) {
      throw new AetherError(
        "bad_request",
        `${what}: unknown field "${key}" (expected ${fields.join(", ")})`,
        { field: key },
      );
    }
  }
  return body as Record<string, unknown>;
}
