/**
 * The checks every bundled service slice makes (infra/_service.ts): a refusal's name is what callers see as
 * the problem's title and match by (`errors` of a slice's manifest), so it must be BadRequest / Forbidden,
 * never the "Error" an Error subclass gets by default.
 */

import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import type { Context } from "@aether/slices";
import { forward } from "./_service.ts";

/** The two things `forward` reads of a context: the caller and the engine it hands the request to. */
function contextOf(caller: string | undefined, handed: unknown[]): Context<unknown, unknown> {
  return {
    caller,
    serviceHost: (method: string, request: unknown) => Promise.resolve(void handed.push({ method, request })),
  } as unknown as Context<unknown, unknown>;
}

Deno.test("service slices: a bad key is a 400 BadRequest naming the field; no caller is a 403 Forbidden", async () => {
  const put = forward("cache", "put", { name: "cache", keys: ["key"] });
  const handed: unknown[] = [];
  const ctx = contextOf("org.example:app:1.0.0", handed);
  const refused = (name: string, status: number, message: RegExp) => (e: Error & { status?: number }) => {
    assertEquals([e.name, e.status], [name, status]);
    return message.test(e.message);
  };
  throws(
    () => put({ cache: "links", key: "" }, ctx),
    refused("BadRequest", 400, /key must be a non-empty string/),
  );
  throws(
    () => put({ cache: "links", key: "k".repeat(513) }, ctx),
    refused("BadRequest", 400, /cache\.put: key is over 512 bytes/),
  );
  throws(() => put({ cache: "no/slash", key: "k" }, ctx), refused("BadRequest", 400, /cache must be 1-64/));
  throws(() => put([], ctx), refused("BadRequest", 400, /the request must be a JSON object/));
  throws(
    () => put({ cache: "links", key: "k" }, contextOf(undefined, handed)),
    refused("Forbidden", 403, /slices only/),
  );
  assertEquals(handed, []);
  await put({ cache: "links", key: "k", value: 1 }, ctx);
  assertEquals(handed, [{
    method: "put",
    request: { caller: "org.example:app:1.0.0", request: { cache: "links", key: "k", value: 1 } },
  }]);
});
