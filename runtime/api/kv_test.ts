/**
 * The KV routes' input checks, through the real Hono routes: bad percent-encoding, control characters and
 * out-of-range numbers are 400 problems naming what was wrong, and such a request never reaches the store.
 * (The multi-process bad-input suite, tests/integration/bad_input_test.ts, sends the same on a real node.)
 */

import { deepStrictEqual, equal, match, throws } from "node:assert/strict";
import { Hono } from "hono";
import { AetherError, createLogger, problemResponse, toAetherError } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { ApiDeps } from "./deps.ts";
import { kvKeyOf, kvRoutes, MAX_KV_TIMEOUT_MS } from "./kv.ts";
import { decodeStrict, intInRange, printable } from "./_input.ts";

/** A store that records what reaches it (the routes' refusals must come before). */
function recordingApp() {
  const reached: string[] = [];
  const kv = {
    maxValueBytes: 1024,
    write(command: { type: string; key: string }, options?: { timeoutMs?: number }) {
      reached.push(`${command.type} ${command.key} ${options?.timeoutMs ?? "-"}`);
      return Promise.resolve({ revision: 1, deleted: 1 });
    },
    get(key: string) {
      reached.push(`get ${key}`);
      return Promise.resolve(undefined);
    },
    range() {
      reached.push("range");
      return { revision: 1, items: [] };
    },
  } as unknown as KvAccess;
  const deps = { kv, log: createLogger({ level: "error", sink: () => {} }) } as unknown as ApiDeps;
  const app = new Hono();
  app.onError((e) => problemResponse(toAetherError(e)));
  app.route("/api/v1", kvRoutes(deps));
  return { app, reached };
}

async function problem(response: Response) {
  equal(response.headers.get("content-type"), "application/problem+json");
  return (await response.json()) as { status: number; detail: string };
}

Deno.test("kv keys: bad percent-encoding, a lone surrogate, control characters are 400s naming the key", async () => {
  const { app, reached } = recordingApp();
  const cases: Array<[string, RegExp]> = [
    ["app/%ZZ", /bad percent-encoding.*%ZZ/],
    ["app/%ED%A0%80", /bad percent-encoding/],
    ["app/x%E2%82", /bad percent-encoding/],
    ["app/a%00b", /key "app\/a\\u\{00\}b": keys may not contain control characters/],
    ["app/a%0D%0Ab", /key "app\/a\\u\{0d\}\\u\{0a\}b"/],
    ["app/a%7F", /control characters/],
  ];
  for (const method of ["PUT", "GET", "DELETE"]) {
    for (const [key, detail] of cases) {
      const response = await app.request(`http://h/api/v1/kv/${key}`, {
        method,
        body: method === "PUT" ? "v" : null,
      });
      equal(response.status, 400, `${method} ${key}`);
      match((await problem(response)).detail, detail);
    }
  }
  const empty = await app.request("http://h/api/v1/kv/app/", { method: "PUT", body: "v" });
  equal(empty.status, 400);
  match((await problem(empty)).detail, /app\/ key needs a name/);
  deepStrictEqual(reached, [], "nothing malformed reached the store");
  // A key with an encoded "%" and "/" is decoded once, exactly.
  const ok = await app.request("http://h/api/v1/kv/app/100%25%2Fdone", { method: "PUT", body: "v" });
  equal(ok.status, 200);
  deepStrictEqual(reached, ["put app/100%/done -"]);
});

Deno.test("kv numeric parameters: out of range, signs, fractions, exponents are 400s naming parameter and range", async () => {
  const { app, reached } = recordingApp();
  const cases: Array<[string, string, string]> = [
    ["PUT", "/api/v1/kv/app/n?timeoutMs=99999999999999", "timeoutMs"],
    ["PUT", "/api/v1/kv/app/n?timeoutMs=0", "timeoutMs"],
    ["PUT", "/api/v1/kv/app/n?timeoutMs=1e3", "timeoutMs"],
    ["DELETE", "/api/v1/kv/app/n?timeoutMs=-5", "timeoutMs"],
    ["PUT", "/api/v1/kv/app/n?ifRevision=99999999999999999999", "ifRevision"],
    ["GET", "/api/v1/kv/app/n?timeoutMs=99999999999999", "timeoutMs"],
    ["GET", "/api/v1/kv?limit=0", "limit"],
    ["GET", "/api/v1/kv?limit=1.5", "limit"],
    ["GET", "/api/v1/kv?prefix=%ZZ", "prefix"],
    ["GET", "/api/v1/kv-watch?fromRevision=99999999999999999999", "fromRevision"],
  ];
  for (const [method, path, name] of cases) {
    const response = await app.request(`http://h${path}`, { method, body: method === "PUT" ? "v" : null });
    equal(response.status, 400, `${method} ${path}`);
    match((await problem(response)).detail, new RegExp(`query parameter ${name}:`));
  }
  const watch = await app.request("http://h/api/v1/kv-watch", { headers: { "last-event-id": "1e9" } });
  equal(watch.status, 400);
  match((await problem(watch)).detail, /header last-event-id: "1e9" is not a whole number/);
  deepStrictEqual(reached, [], "a refused write is not applied");
  const at = await app.request(`http://h/api/v1/kv/app/n?timeoutMs=${MAX_KV_TIMEOUT_MS}&ifRevision=0`, {
    method: "PUT",
    body: "v",
  });
  equal(at.status, 200);
  deepStrictEqual(reached, [`put app/n ${MAX_KV_TIMEOUT_MS}`]);
});

Deno.test("input helpers: strict decoding, ranges and printable text", () => {
  equal(decodeStrict("a%2Fb", "x"), "a/b");
  equal(decodeStrict("a+b", "x", true), "a b");
  throws(
    () => decodeStrict("%E2%82", "the key"),
    (e: AetherError) => e.status === 400 && /^the key:/.test(e.message),
  );
  equal(intInRange("0", "n", { min: 0, max: 5 }), 0);
  for (const text of ["6", "-1", "1.0", "1e2", " 1", "", "99999999999999999"]) {
    throws(() => intInRange(text, "n", { min: 0, max: 5 }), /n: .* is not a whole number from 0 to 5/, text);
  }
  equal(printable("a\u0000b\r\n\u001b[2J\u007f"), "a\\u{00}b\\u{0d}\\u{0a}\\u{1b}[2J\\u{7f}");
  equal(kvKeyOf("/api/v1/kv/app/%C3%A9t%C3%A9"), "app/été");
});
