/**
 * The deployment part of the management API (mounted under /api/v1 by the deployment feature):
 *
 *   POST   /blueprints                 TOML body; ?dryRun=true validates, expands and returns the plan only
 *   GET    /blueprints                 every published blueprint
 *   GET    /blueprints/{id}            one blueprint, with its TOML source
 *   GET    /blueprints/{id}/status     the slices it owns: desired and actual instances, settled or not
 *   DELETE /blueprints/{id}            removes it and undeploys what only it owns (?dryRun=true: the plan)
 *   POST   /deploy    {artifact: "g:a:v", instances?: N}     (?dryRun=true; another version of a deployed slice
 *                      replaces it, unless `routing/` names both: then both keep running, see cluster_manager.ts;
 *                      without `instances` a deployed slice keeps its count, a new one gets 1)
 *   POST   /scale     {artifact: "g:a", instances: N}        (?dryRun=true)
 *   POST   /undeploy  {artifact: "g:a" or "g:a:v"}           (?dryRun=true; with a version that is not the one
 *                      deployed: 409 naming the deployed version)
 *   GET    /slices                     every slice: version, desired and actual instances, each instance (of
 *                                      every version; `routed` and `weights` while `routing/` keeps two)
 *
 * Every error is an AetherError, which the API turns into an RFC 7807 problem document: blueprint problems carry
 * `line`, `column`, `field` and `problems` (all of them); JSON body problems carry `field`. Changes are planned
 * against this node's state and submitted as one compare-guarded transaction; when the state moved in between
 * (the transaction's compares failed) the change is planned again on the newer state, a few times, then 409.
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { AetherError, type NodeId, parseArtifactBase, parseCoordinates } from "../core/mod.ts";
import type { KvCommand } from "../kv/mod.ts";
import { type BlueprintRecord, KEY_PREFIXES, kvKeys, type TargetRecord } from "../model/mod.ts";
import { MAX_BLUEPRINT_BYTES, MAX_INSTANCES, parseBlueprint } from "./blueprint.ts";
import {
  planBlueprintDelete,
  planBlueprintSource,
  planDeploy,
  type Planned,
  planScale,
  planUndeploy,
  protectBudget,
  protectDependents,
} from "./targets.ts";
import { type KvReader, ViewReader } from "./view.ts";
import { blueprintStatus, sliceStatuses } from "./status.ts";
import { decodeValueMemo } from "./_memo.ts";

export interface DeploymentApiDeps {
  /** This node's current state. */
  state(): KvReader;
  /** Replicates a command; resolves once applied here (`succeeded: false`: a transaction's compares failed). */
  write(command: KvCommand): Promise<{ revision: number; succeeded?: boolean }>;
  /** Whether this node reaches `node` now (for instance status). */
  isConnected(node: NodeId): boolean;
  nowMs(): number;
  /**
   * Starts the infrastructure services named (in order) before the slices that require them are deployed;
   * throws (the seed's message) for a name no service has. None: `requires` is not checked.
   */
  resolveRequires?(names: readonly string[]): Promise<void>;
  /** The leader's placement reasons (cluster_manager.ts `waiting`), for pending slices; none: not shown. */
  placementWaiting?(): readonly string[];
}

/** Instances of a slice deployed for the first time without a count. */
const DEFAULT_INSTANCES = 1;
/** Largest JSON body of deploy, scale and undeploy. */
const MAX_JSON_BYTES = 16 * 1024;
/** How often a change is planned again when the state moved under it. */
const ATTEMPTS = 3;

export function deploymentRoutes(deps: DeploymentApiDeps): Hono {
  const app = new Hono();
  const views = new ViewReader();

  /** Plans against the current state and submits, planning again when the state changed in between. */
  const apply = async <P>(plan: () => Planned<P>): Promise<{ plan: P; revision: number }> => {
    for (let attempt = 1;; attempt++) {
      const planned = plan();
      const outcome = await deps.write(planned.command);
      if (outcome.succeeded !== false) return { plan: planned.plan, revision: outcome.revision };
      if (attempt === ATTEMPTS) {
        throw new AetherError(
          "conflict",
          `the deployment state changed ${ATTEMPTS} times while this change was being applied; try again`,
        );
      }
    }
  };

  app.post("/blueprints", async (c) => {
    const dryRun = dryRunParam(c);
    const source = await textBody(c, MAX_BLUEPRINT_BYTES, "blueprint");
    await deps.resolveRequires?.(blueprintRequires(deps.state(), source));
    if (dryRun) {
      const { plan } = planBlueprintSource(deps.state(), source, deps.nowMs());
      return c.json({ ...plan, dryRun: true });
    }
    const { plan, revision } = await apply(() => planBlueprintSource(deps.state(), source, deps.nowMs()));
    return c.json({ ...plan, dryRun: false, revision }, plan.action === "create" ? 201 : 200);
  });

  app.get("/blueprints", (c) => {
    const state = deps.state();
    const blueprints = state.range(KEY_PREFIXES.blueprints).map((entry) => {
      const { id, slices, publishedAt } = blueprintOf(entry.key, entry.value);
      return { id, publishedAt, slices };
    });
    return c.json({ revision: state.revision, blueprints });
  });

  app.get("/blueprints/:id", (c) => {
    const state = deps.state();
    return c.json({ revision: state.revision, ...readBlueprint(state, c.req.param("id")) });
  });

  app.get("/blueprints/:id/status", (c) => {
    const state = deps.state();
    const { id } = readBlueprint(state, c.req.param("id"));
    return c.json({
      revision: state.revision,
      ...blueprintStatus(views.read(state), id, deps.isConnected),
    });
  });

  app.delete("/blueprints/:id", async (c) => {
    const dryRun = dryRunParam(c);
    const id = blueprintId(c.req.param("id"));
    if (dryRun) return c.json({ ...planBlueprintDelete(deps.state(), id, deps.nowMs()).plan, dryRun: true });
    const { plan, revision } = await apply(() => planBlueprintDelete(deps.state(), id, deps.nowMs()));
    return c.json({ ...plan, dryRun: false, revision });
  });

  app.post("/deploy", async (c) => {
    const dryRun = dryRunParam(c);
    const body = await jsonBody(c, "deploy", ["artifact", "instances"]);
    const artifact = coordinatesField(body, "deploy");
    const requested = body.instances === undefined ? undefined : instancesField(body, "deploy");
    const { group, artifact: name } = parseCoordinates(artifact, "deploy: artifact");
    await deps.resolveRequires?.(manifestRequires(deps.state(), artifact));
    // A new version of a running slice keeps its instance count unless the request names one.
    const instances = (state: KvReader) =>
      requested ?? currentTarget(state, `${group}:${name}`)?.instances ?? DEFAULT_INSTANCES;
    const plan = () => {
      const state = deps.state();
      return planDeploy(state, artifact, instances(state), deps.nowMs());
    };
    if (dryRun) return c.json({ ...plan().plan, dryRun: true });
    const { plan: done, revision } = await apply(plan);
    return c.json({ ...done, dryRun: false, revision }, done.entry.action === "create" ? 201 : 200);
  });

  app.post("/scale", async (c) => {
    const dryRun = dryRunParam(c);
    const body = await jsonBody(c, "scale", ["artifact", "instances"]);
    const slice = sliceField(body, "scale");
    const instances = instancesField(body, "scale");
    const force = forceParam(c);
    const plan = () => {
      const state = deps.state();
      if (instances === 0 && !force) protectDependents(state, sliceBase(slice), "scale to 0");
      if (!force) protectBudget(state, sliceBase(slice), instances);
      return planScale(state, slice, instances, deps.nowMs());
    };
    if (dryRun) return c.json({ ...plan().plan, dryRun: true });
    const { plan: done, revision } = await apply(plan);
    return c.json({ ...done, dryRun: false, revision });
  });

  app.post("/undeploy", async (c) => {
    const dryRun = dryRunParam(c);
    const body = await jsonBody(c, "undeploy", ["artifact"]);
    const slice = sliceField(body, "undeploy");
    const force = forceParam(c);
    const plan = () => {
      const state = deps.state();
      refuseOtherVersion(state, slice);
      // Not deployed or owned by a blueprint are the first answers; callers only matter for what may go.
      const planned = planUndeploy(state, slice);
      if (!force) protectDependents(state, sliceBase(slice), "undeploy");
      return planned;
    };
    if (dryRun) return c.json({ ...plan().plan, dryRun: true });
    const { plan: done, revision } = await apply(plan);
    return c.json({ ...done, dryRun: false, revision });
  });

  app.get("/slices", (c) => {
    const state = deps.state();
    const waiting = deps.placementWaiting?.() ?? [];
    return c.json({
      revision: state.revision,
      slices: sliceStatuses(views.read(state), deps.isConnected, waiting),
    });
  });

  return app;
}

// -- request parsing -------------------------------------------------------------------------------------------

/** `group:artifact` of `g:a` or `g:a:v`. */
function sliceBase(slice: string): string {
  return slice.split(":").slice(0, 2).join(":");
}

/** `?force=true`: undeploy or scale to 0 even while ACTIVE slices call the slice. */
function forceParam(c: Context): boolean {
  const text = c.req.query("force");
  if (text === undefined || text === "" || text === "false") return false;
  if (text === "true") return true;
  throw new AetherError("bad_request", `force: expected true or false, got "${text}"`, { field: "force" });
}

function dryRunParam(c: Context): boolean {
  const text = c.req.query("dryRun");
  if (text === undefined || text === "" || text === "false") return false;
  if (text === "true") return true;
  throw new AetherError("bad_request", `query parameter dryRun: "${text}" is not true or false`, {
    field: "dryRun",
  });
}

async function rawBody(c: Context, maxBytes: number, what: string): Promise<Uint8Array> {
  const declared = Number(c.req.header("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(what, maxBytes);
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength > maxBytes) throw tooLarge(what, maxBytes);
  return bytes;
}

function tooLarge(what: string, maxBytes: number): AetherError {
  return new AetherError("too_large", `the ${what} is larger than the limit of ${maxBytes} bytes`);
}

async function textBody(c: Context, maxBytes: number, what: string): Promise<string> {
  const bytes = await rawBody(c, maxBytes, what);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new AetherError("bad_request", `the ${what} is not UTF-8 text`);
  }
}

type JsonObject = Record<string, unknown>;

async function jsonBody(c: Context, what: string, fields: string[]): Promise<JsonObject> {
  const text = await textBody(c, MAX_JSON_BYTES, `${what} request`);
  const example = `{"artifact": "org.example:inventory${what === "deploy" ? ":1.0.0" : ""}"${
    fields.includes("instances") ? `, "instances": 3` : ""
  }}`;
  if (text.trim() === "") {
    throw new AetherError(
      "bad_request",
      `${what}: the request body is empty; send a JSON object like ${example}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new AetherError("bad_request", `${what}: the request body is not JSON: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AetherError("bad_request", `${what}: the request body must be a JSON object like ${example}`);
  }
  for (const name of Object.keys(value)) {
    if (!fields.includes(name)) {
      throw new AetherError(
        "bad_request",
        `${what}: unknown field "${name}" (the fields are ${fields.join(", ")})`,
        { field: name },
      );
    }
  }
  return value as JsonObject;
}

function fieldError(what: string, field: string, message: string): AetherError {
  return new AetherError("bad_request", `${what}: ${field} ${message}`, { field });
}

function stringField(body: JsonObject, what: string, field: string, expected: string): string {
  const value = body[field];
  if (value === undefined) throw fieldError(what, field, `is missing (expected ${expected})`);
  if (typeof value !== "string") {
    throw fieldError(what, field, `must be a string (${expected}), got ${JSON.stringify(value)}`);
  }
  return value;
}

function coordinatesField(body: JsonObject, what: string): string {
  const text = stringField(body, what, "artifact", `"group:artifact:version"`);
  try {
    parseCoordinates(text, `${what}: artifact`);
  } catch (e) {
    throw new AetherError("bad_request", (e as Error).message, { field: "artifact" });
  }
  return text;
}

/** `g:a` (a `g:a:v` is accepted: a slice has one target, whatever version it runs). */
function sliceField(body: JsonObject, what: string): string {
  const text = stringField(body, what, "artifact", `"group:artifact"`);
  try {
    if (text.split(":").length === 3) parseCoordinates(text, `${what}: artifact`);
    else parseArtifactBase(text, `${what}: artifact`);
  } catch (e) {
    throw new AetherError("bad_request", (e as Error).message, { field: "artifact" });
  }
  return text;
}

function instancesField(body: JsonObject, what: string, fallback?: number): number {
  const value = body.instances;
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw fieldError(what, "instances", `is missing (expected an integer from 0 to ${MAX_INSTANCES})`);
  }
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 || value > MAX_INSTANCES) {
    throw fieldError(
      what,
      "instances",
      `must be an integer from 0 to ${MAX_INSTANCES}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** The `{id}` path parameter (Hono has decoded it), checked: `group:artifact:version`. */
function blueprintId(text: string): string {
  try {
    parseCoordinates(text, "blueprint id");
  } catch (e) {
    throw new AetherError("bad_request", (e as Error).message, { field: "id" });
  }
  return text;
}

// -- reading ---------------------------------------------------------------------------------------------------

function blueprintOf(key: string, value: Uint8Array): BlueprintRecord {
  try {
    return decodeValueMemo("blueprint", value, `value of "${key}"`);
  } catch (e) {
    throw new AetherError("internal", `stored blueprint is damaged: ${(e as Error).message}`);
  }
}

/** The target a slice has now, undefined when it is not deployed. */
function currentTarget(state: KvReader, base: string): TargetRecord | undefined {
  const key = kvKeys.target(base);
  const entry = state.get(key);
  if (!entry) return undefined;
  try {
    return decodeValueMemo("target", entry.value, `value of "${key}"`);
  } catch (e) {
    throw new AetherError("internal", `stored target is damaged: ${(e as Error).message}`);
  }
}

/**
 * `undeploy g:a:v` names the version the caller means to remove: when another one is deployed, removing it
 * would take down what the caller did not name, so the request is refused (409) naming the deployed version.
 */
function refuseOtherVersion(state: KvReader, slice: string): void {
  const parts = slice.split(":");
  if (parts.length !== 3) return;
  const base = `${parts[0]}:${parts[1]}`;
  const target = currentTarget(state, base);
  if (!target || target.version === parts[2]) return; // not deployed: planUndeploy answers 404
  throw new AetherError(
    "conflict",
    `undeploy: ${slice} is not deployed; ${base} runs version ${target.version} (undeploy ${base} or ` +
      `${base}:${target.version} to remove it)`,
    { field: "artifact", deployed: `${base}:${target.version}` },
  );
}

function readBlueprint(state: KvReader, text: string): BlueprintRecord {
  const id = blueprintId(text);
  const key = kvKeys.blueprint(id);
  const entry = state.get(key);
  if (!entry) throw new AetherError("not_found", `there is no blueprint ${id}`, { id });
  return blueprintOf(key, entry.value);
}

/**
 * The infrastructure services a blueprint needs, in the order its slices name them: each slice's `requires`
 * in the blueprint, then those its published manifest declares. A blueprint that does not parse names none
 * (planning reports its problems).
 */
function blueprintRequires(state: KvReader, source: string): string[] {
  let slices: Array<{ artifact: string; requires: readonly string[] }>;
  try {
    slices = parseBlueprint(source).slices;
  } catch {
    return [];
  }
  const names = new Set<string>();
  for (const slice of slices) {
    for (const name of slice.requires) names.add(name);
    for (const name of manifestRequires(state, slice.artifact)) names.add(name);
  }
  return [...names];
}

/** What a published artifact's manifest `requires` (none when it is not published). */
function manifestRequires(state: KvReader, coordinates: string): readonly string[] {
  const entry = state.get(`${KEY_PREFIXES.artifacts}${coordinates}`);
  if (!entry) return [];
  try {
    return decodeValueMemo("artifact", entry.value, coordinates).manifest.requires ?? [];
  } catch {
    return [];
  }
}
