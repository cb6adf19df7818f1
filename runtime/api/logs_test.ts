import assert from "node:assert/strict";
import { Hono } from "hono";
import { AetherError, createLogger, LogRing, problemResponse, toAetherError } from "../core/mod.ts";
import type { ApiDeps, LogsView, NodeStatusView } from "./deps.ts";
import {
  FOLLOW_POLL_MS,
  FollowBuffer,
  logRoutes,
  MAX_FOLLOW_BUFFER_RECORDS,
  MAX_FOLLOWERS,
  parseSince,
} from "./logs.ts";

const quiet = createLogger({ level: "error", sink: () => {} });

/** The cluster of one member: its ring is the whole cluster's log. */
function oneNodeLogs(ring: LogRing): LogsView {
  return {
    gather(q) {
      const cursor = q.cursors?.n1;
      const a = ring.query({ filter: q.filter, limit: q.limit, afterSeq: cursor?.seq });
      return Promise.resolve({
        records: a.records,
        cursors: { n1: { epoch: a.epoch, seq: a.cursor } },
        missed: (a.missed > 0 ? { n1: a.missed } : {}) as Record<string, number>,
        unreachable: {},
      });
    },
  };
}

function app(ring: LogRing): Hono {
  const deps = {
    status: () => ({ members: [{ id: "n1", connected: true }] }) as unknown as NodeStatusView,
    log: quiet,
    logs: oneNodeLogs(ring),
  } as unknown as ApiDeps;
  const hono = new Hono();
  hono.onError((e) => problemResponse(toAetherError(e)));
  hono.route("/api/v1", logRoutes(deps));
  return hono;
}

function write(ring: LogRing, msg: string, fields: Record<string, unknown> = {}) {
  ring.append({ time: Date.now(), level: "info", node: "n1", msg, fields }, 100);
}

/** Reads SSE events until `until` says stop (or `timeoutMs` passes). */
async function events(response: Response, until: (events: { event: string; data: unknown }[]) => boolean) {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const seen: { event: string; data: unknown }[] = [];
  let buffer = "";
  const deadline = Date.now() + 10_000;
  try {
    while (!until(seen)) {
      if (Date.now() > deadline) throw new Error(`gave up after ${JSON.stringify(seen).slice(0, 500)}`);
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) seen.push({ event, data: JSON.parse(data) });
      }
    }
  } finally {
    await reader.cancel();
  }
  return seen;
}

Deno.test("parseSince: durations back from now, ISO times, anything else names the parameter", () => {
  const now = Date.UTC(2026, 0, 1, 12);
  assert.equal(parseSince("5m", now), now - 300_000);
  assert.equal(parseSince("500ms", now), now - 500);
  assert.equal(parseSince("2h", now), now - 7_200_000);
  assert.equal(parseSince("1d", now), now - 86_400_000);
  assert.equal(parseSince("2026-01-01T11:00:00Z", now), now - 3_600_000);
  assert.equal(parseSince("2026-01-01T13:00:00+02:00", now), now - 3_600_000);
  for (const bad of ["5", "5 m", "-5m", "yesterday", "2026-13-45T00:00:00Z", "1y"]) {
    assert.throws(
      () => parseSince(bad, now),
      (e: AetherError) =>
        e.code === "bad_request" && e.extra?.parameter === "since" && e.message.includes(bad),
      bad,
    );
  }
});

Deno.test("FollowBuffer: beyond its bound the oldest go, and the reader hears how many before the rest", async () => {
  const buffer = new FollowBuffer(3);
  const signal = new AbortController().signal;
  for (let seq = 1; seq <= 5; seq++) {
    buffer.push({ kind: "record", record: { seq, time: seq, level: "info", msg: `m${seq}`, fields: {} } });
  }
  assert.equal(buffer.size, 3);
  assert.deepEqual(await buffer.next(signal), {
    kind: "dropped",
    count: 2,
    why: "this client read slower than the cluster logged",
  });
  const rest = [await buffer.next(signal), await buffer.next(signal), await buffer.next(signal)];
  assert.deepEqual(rest.map((i) => i?.kind === "record" ? i.record.msg : i?.kind), ["m3", "m4", "m5"]);
  // An empty buffer waits for the next push, and ends when its reader goes.
  const waiting = buffer.next(signal);
  buffer.push({ kind: "unreachable", node: "n2", reason: "down" });
  assert.deepEqual(await waiting, { kind: "unreachable", node: "n2", reason: "down" });
  const gone = new AbortController();
  const ended = buffer.next(gone.signal);
  gone.abort();
  assert.equal(await ended, undefined);
});

Deno.test("GET /logs: records with filters; a bad or unknown parameter is a 400 naming it", async () => {
  const ring = new LogRing();
  write(ring, "a", { requestId: "r1", slice: "g:s:1.0.0" });
  write(ring, "b");
  const hono = app(ring);
  const ok = await hono.request("/api/v1/logs?requestId=r1&slice=g:s");
  assert.equal(ok.status, 200);
  const body = await ok.json();
  assert.deepEqual(body.records.map((r: { msg: string }) => r.msg), ["a"]);
  assert.deepEqual(Object.keys(body.records[0]).sort(), ["fields", "level", "msg", "node", "time"]);
  for (
    const [query, parameter] of [["level=x", "level"], ["node=n2", "node"], ["limit=-1", "limit"], [
      "x=1",
      "x",
    ]]
  ) {
    const r = await hono.request(`/api/v1/logs?${query}`);
    assert.equal(r.status, 400, query);
    assert.equal(r.headers.get("content-type"), "application/problem+json");
    const problem = await r.json();
    assert.equal(problem.parameter, parameter, query);
    assert.match(problem.detail, new RegExp(`^query parameter ${parameter}: `));
  }
});

Deno.test("GET /logs?follow=true: the backlog, then records written later", async () => {
  const ring = new LogRing();
  write(ring, "old");
  const response = await app(ring).request("/api/v1/logs?follow=true&limit=5");
  assert.equal(response.status, 200);
  setTimeout(() => write(ring, "new"), 300);
  const seen = await events(response, (s) => s.some((e) => (e.data as { msg?: string }).msg === "new"));
  assert.deepEqual(seen.map((e) => [e.event, (e.data as { msg: string }).msg]), [["record", "old"], [
    "record",
    "new",
  ]]);
});

Deno.test("GET /logs?follow=true: a client that does not read loses the oldest records and is told", async () => {
  const ring = new LogRing({ maxRecords: 20_000, maxBytes: 64 * 1024 * 1024 });
  const response = await app(ring).request("/api/v1/logs?follow=true&limit=1");
  // Far more than the follower's buffer, in pages the poller fetches while nobody reads the stream.
  const total = MAX_FOLLOW_BUFFER_RECORDS * 3;
  for (let i = 0; i < total; i++) write(ring, `m${i}`);
  await new Promise((r) => setTimeout(r, 2_500));
  const seen = await events(
    response,
    (s) => s.some((e) => (e.data as { msg?: string }).msg === `m${total - 1}`),
  );
  const dropped = seen.filter((e) => e.event === "dropped");
  assert.ok(dropped.length > 0, `no dropped marker among ${seen.length} events`);
  const droppedCount = dropped.reduce((sum, e) => sum + (e.data as { count: number }).count, 0);
  const records = seen.filter((e) => e.event === "record").length;
  assert.equal(records + droppedCount, total, "every record is either sent or counted as dropped");
});

Deno.test("GET /logs?follow=true: a follower that goes frees its place; beyond MAX_FOLLOWERS at once, 503", async () => {
  const ring = new LogRing();
  write(ring, "one");
  const hono = app(ring);
  for (let i = 0; i < MAX_FOLLOWERS + 5; i++) {
    const response = await hono.request("/api/v1/logs?follow=true");
    assert.equal(response.status, 200, `follower ${i}`);
    await events(response, (s) => s.length > 0);
  }
  await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS * 2));
  const open = [];
  for (let i = 0; i < MAX_FOLLOWERS; i++) open.push(await hono.request("/api/v1/logs?follow=true"));
  const refused = await hono.request("/api/v1/logs?follow=true");
  assert.equal(refused.status, 503);
  assert.match((await refused.json()).detail, new RegExp(`${MAX_FOLLOWERS} log followers`));
  for (const response of open) await response.body!.cancel();
});
