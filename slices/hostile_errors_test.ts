/**
 * Anything a method throws gets an answer: a Proxy whose every trap throws, an object whose `message` getter or
 * `toString` throws, a value whose `then` getter throws, a result whose reading throws. Before these were
 * guarded, `errorInfo` threw while building the reply and the call was never answered (in process isolation
 * the child stopped reading calls altogether).
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { defineSlice } from "./mod.ts";
import { testSlice } from "./testing.ts";

const trapsThatThrow = new Proxy({}, {
  get() {
    throw new Error("get trap");
  },
  has() {
    throw new Error("has trap");
  },
  getPrototypeOf() {
    throw new Error("getPrototypeOf trap");
  },
  ownKeys() {
    throw new Error("ownKeys trap");
  },
});

const hostile = defineSlice({
  coordinates: "org.example:hostile-errors:0.0.1",
  methods: {
    throwProxy() {
      throw trapsThatThrow;
    },
    throwBadMessage() {
      throw {
        get message() {
          throw new Error("message getter");
        },
        name: "Weird",
      };
    },
    throwBadToString() {
      throw {
        toString() {
          throw new Error("toString");
        },
      };
    },
    throwBadErrorDetails() {
      const error = new Error("with hostile details") as Error & { details: unknown; status: number };
      error.details = trapsThatThrow;
      error.status = 422;
      throw error;
    },
    rejectProxy() {
      return Promise.reject(trapsThatThrow);
    },
    returnHostileThen() {
      return {
        get then() {
          throw new Error("then getter");
        },
      };
    },
    returnProxy() {
      return trapsThatThrow;
    },
    throwSymbol() {
      throw Symbol("s");
    },
    ping() {
      return "pong";
    },
  },
});

Deno.test("every thrown or returned hostile value gets an answer, and the instance keeps serving", async () => {
  const t = await testSlice(hostile);
  const cases: [string, string, string][] = [
    ["throwProxy", "Error", "unreadable"],
    ["throwBadMessage", "Weird", "unreadable"],
    ["throwBadToString", "Error", "conversion to a string threw"],
    ["throwBadErrorDetails", "Error", "with hostile details"],
    ["rejectProxy", "Error", "unreadable"],
    ["returnHostileThen", "Error", "then getter"],
    ["returnProxy", "Error", "get trap"],
    ["throwSymbol", "Error", "Symbol(s)"],
  ];
  for (const [method, name, fragment] of cases) {
    const outcome = await t.invoke(method, {}, { timeoutMs: 2_000 });
    assert(!outcome.ok, `${method}: ${JSON.stringify(outcome)}`);
    assertEquals(outcome.error.name, name, `${method}: ${outcome.error.message}`);
    assert(outcome.error.message.includes(fragment), `${method}: "${outcome.error.message}"`);
  }
  const details = await t.invoke("throwBadErrorDetails", {});
  assert(!details.ok && details.error.status === 422, JSON.stringify(details));
  assertEquals(await t.invoke("ping", {}), { ok: true, value: "pong" });
});
