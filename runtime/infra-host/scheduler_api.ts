/**
 * The scheduler's and state machines' part of the management API (mounted under /api/v1 by the node):
 *
 *   GET    /jobs[?group=g]                  every job (of a group), with its next occurrence and last run
 *   POST   /jobs/{group}/{name}             creates a job: {"cron":"*\/5 * * * * *","slice":"a","method":"m"}
 *   GET    /jobs/{group}/{name}             one job
 *   GET    /jobs/{group}/{name}/history     its last runs (bounded)
 *   POST   /jobs/{group}/{name}/run         fires it now (the method's outcome in the answer)
 *   POST   /jobs/{group}/{name}/pause       stops firing it; /resume starts again from the next occurrence
 *   DELETE /jobs/{group}/{name}
 *   GET    /machines[?group=g]              declared machines and their instance counts
 *   GET    /machines/{group}/{machine}      the instances of one machine (?limit, at most 1000)
 *   GET    /machines/{group}/{machine}/{id} one instance with its history
 *   POST   /machines/{group}/{machine}/{id}/events   sends {"event":"pay","data":{...}}
 *   DELETE /machines/{group}/{machine}/{id} removes an instance (and its pending timeout)
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import { jobView, type Scheduler } from "./scheduler.ts";
import type { StateMachines } from "./statemachine.ts";

const GROUP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

function param(value: string, parameter: string, pattern: RegExp, expected: string): string {
  if (!pattern.test(value)) {
    throw new AetherError(
      "bad_request",
      `path ${parameter} ${JSON.stringify(value.slice(0, 80))}: expected ${expected}`,
      { parameter },
    );
  }
  return value;
}

const groupParam = (v: string) => param(v, "group", GROUP, "a slice group like org.example.shop");
const nameParam = (v: string, what: string) =>
  param(v, what, NAME, "1-128 letters, digits, '.', '_', '-', ':', '@'");

async function jsonBody(request: Request): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    throw new AetherError("bad_request", "body: expected a JSON object", { field: "(body)" });
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AetherError("bad_request", `body: expected a JSON object, got ${JSON.stringify(body)}`, {
      field: "(body)",
    });
  }
  return body as Record<string, unknown>;
}

export function schedulerRoutes(scheduler: Scheduler, machines?: StateMachines): Hono {
  const app = new Hono();
  app.get("/jobs", (c) => {
    const group = c.req.query("group");
    const items = scheduler.list(group === undefined ? undefined : groupParam(group))
      .filter((j) => j.source !== "machine" || c.req.query("all") === "true")
      .map(jobView);
    return c.json({ items });
  });
  const job = (c: { req: { param(name: string): string } }) => {
    const group = groupParam(c.req.param("group"));
    const name = nameParam(c.req.param("name"), "name");
    const found = scheduler.get(group, name);
    if (found === undefined) {
      throw new AetherError("not_found", `no job ${name} in group ${group}`, { errorName: "JobNotFound" });
    }
    return found;
  };
  app.post("/jobs/:group/:name", async (c) => {
    const group = groupParam(c.req.param("group"));
    const name = nameParam(c.req.param("name"), "name");
    const record = await scheduler.create(group, name, await jsonBody(c.req.raw), "api");
    return c.json(jobView(record), 201);
  });
  app.get("/jobs/:group/:name", (c) => c.json({ ...jobView(job(c)), history: job(c).history }));
  app.get("/jobs/:group/:name/history", (c) => c.json({ items: job(c).history }));
  app.post("/jobs/:group/:name/run", async (c) => {
    const { group, name } = job(c);
    return c.json(await scheduler.runNow(group, name));
  });
  app.post("/jobs/:group/:name/pause", async (c) => {
    const { group, name } = job(c);
    return c.json(jobView(await scheduler.setPaused(group, name, true)));
  });
  app.post("/jobs/:group/:name/resume", async (c) => {
    const { group, name } = job(c);
    return c.json(jobView(await scheduler.setPaused(group, name, false)));
  });
  app.delete("/jobs/:group/:name", async (c) => {
    const { group, name } = job(c);
    return c.json({ deleted: await scheduler.remove(group, name) });
  });
  if (machines) machineRoutes(app, machines);
  return app;
}

function machineRoutes(app: Hono, machines: StateMachines): void {
  app.get("/machines", (c) => {
    const group = c.req.query("group");
    return c.json({ items: machines.machines(group === undefined ? undefined : groupParam(group)) });
  });
  app.get("/machines/:group/:machine", (c) => {
    const group = groupParam(c.req.param("group"));
    const machine = nameParam(c.req.param("machine"), "machine");
    const limitText = c.req.query("limit") ?? "100";
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new AetherError(
        "bad_request",
        `query limit must be an integer from 1 to 1000, got ${limitText}`,
        {
          parameter: "limit",
        },
      );
    }
    return c.json({ items: machines.list(group, machine, limit) });
  });
  app.get("/machines/:group/:machine/:id", async (c) => {
    const group = groupParam(c.req.param("group"));
    const machine = nameParam(c.req.param("machine"), "machine");
    const id = nameParam(c.req.param("id"), "id");
    const instance = await machines.get(group, machine, id);
    if (instance === undefined) {
      throw new AetherError("not_found", `no instance ${id} of machine ${group}/${machine}`, {
        errorName: "InstanceNotFound",
      });
    }
    return c.json(instance);
  });
  app.delete("/machines/:group/:machine/:id", async (c) => {
    const group = groupParam(c.req.param("group"));
    const machine = nameParam(c.req.param("machine"), "machine");
    const id = nameParam(c.req.param("id"), "id");
    return c.json({ deleted: await machines.remove(group, machine, id) });
  });
  app.post("/machines/:group/:machine/:id/events", async (c) => {
    const group = groupParam(c.req.param("group"));
    const machine = nameParam(c.req.param("machine"), "machine");
    const id = nameParam(c.req.param("id"), "id");
    const body = await jsonBody(c.req.raw);
    return c.json(await machines.send(group, machine, id, body.event, body.data, "api"));
  });
}
