/**
 * The autoscaling controller under /api/v1 (the leader runs it: runtime/control/controller_feature.ts; any
 * node answers, reading the replicated rules and state):
 *
 *   GET    /controller                  status: leading, paused, pins, evaluation time, forecaster
 *   GET    /controller/rules            the stored rules and the effective ones (defaults filled in)
 *   PUT    /controller/rules            replaces the stored rules (a JSON object; every field optional)
 *   POST   /controller/pause|resume     stops or restarts automatic decisions (pins stay)
 *   PUT    /controller/pins/{g:a}       {instances?}: pins a slice (scaling it to `instances` first)
 *   DELETE /controller/pins/{g:a}       lifts a pin
 *   GET    /controller/decisions        the latest decisions with their inputs (?slice=&limit=)
 *   GET    /controller/forecast         per slice: the last hour's per-minute rates beside the forecast
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { AetherError, formatBase, parseArtifactBase } from "../core/mod.ts";
import type { ControllerService } from "../control/mod.ts";
import { MAX_STORED_DECISIONS } from "../model/mod.ts";
import { callerOf } from "./auth.ts";
import { intParam, queryParam } from "./_input.ts";

const MAX_BODY_BYTES = 16 * 1024;

export function controllerRoutes(controller: ControllerService): Hono {
  const app = new Hono();

  app.get("/controller", (c) => {
    const state = controller.sharedState();
    return c.json({
      ...controller.status(),
      pausedBy: state.pausedBy ?? null,
      pinned: state.pins,
    });
  });

  app.get("/controller/rules", (c) => c.json(controller.rules()));

  app.put("/controller/rules", async (c) => {
    const body = await jsonBody(c, "rules: a JSON object of rule fields (see GET /api/v1/controller/rules)");
    return c.json(await controller.putRules(body));
  });

  app.post("/controller/pause", async (c) => {
    const state = await controller.setPaused(true, who(c));
    return c.json({ paused: state.paused, pausedBy: state.pausedBy ?? null });
  });

  app.post("/controller/resume", async (c) => {
    const state = await controller.setPaused(false);
    return c.json({ paused: state.paused });
  });

  app.put("/controller/pins/:slice", async (c) => {
    const slice = sliceParam(c.req.param("slice"), "slice");
    const body = c.req.header("content-length") === "0" ? {} : await jsonBody(c, "pin: {instances?}", true);
    for (const key of Object.keys(body)) {
      if (key !== "instances") {
        throw new AetherError("bad_request", `pin: unknown field "${key}" (only instances)`, { field: key });
      }
    }
    const instances = body.instances;
    if (instances !== undefined && (!Number.isSafeInteger(instances) || (instances as number) < 0)) {
      throw new AetherError(
        "bad_request",
        `instances: expected an integer >= 0, got ${JSON.stringify(instances)}`,
        {
          field: "instances",
        },
      );
    }
    const state = await controller.pin(slice, instances as number | undefined, who(c));
    return c.json({ slice, pin: state.pins[slice] });
  });

  app.delete("/controller/pins/:slice", async (c) => {
    const slice = sliceParam(c.req.param("slice"), "slice");
    await controller.unpin(slice);
    return c.json({ slice, pinned: false });
  });

  app.get("/controller/decisions", (c) => {
    const slice = optionalSlice(c);
    const limit = intParam(c, "limit", { min: 1, max: MAX_STORED_DECISIONS }) ?? MAX_STORED_DECISIONS;
    return c.json({ decisions: controller.decisions(slice, limit) });
  });

  app.get("/controller/forecast", (c) => {
    const slice = optionalSlice(c);
    return c.json({ forecaster: controller.status().forecaster, slices: controller.forecast(slice) });
  });

  return app;
}

function who(c: Context): string | undefined {
  const caller = callerOf(c);
  return caller ? `${caller.tokenName} (${caller.role})` : undefined;
}

function optionalSlice(c: Context): string | undefined {
  const text = queryParam(c, "slice");
  return text === undefined || text === "" ? undefined : sliceParam(text, "slice");
}

function sliceParam(value: unknown, field: string): string {
  if (typeof value !== "string") {
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

async function jsonBody(c: Context, expected: string, allowEmpty = false): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text.length > MAX_BODY_BYTES) throw new AetherError("too_large", `body: over ${MAX_BODY_BYTES} bytes`);
  if (allowEmpty && text.trim() === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new AetherError("bad_request", `body: not JSON (${(e as Error).message}); expected ${expected}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AetherError("bad_request", `body: expected ${expected}`);
  }
  return body as Record<string, unknown>;
}
