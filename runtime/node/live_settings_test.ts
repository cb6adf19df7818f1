import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { LiveCallDefaults } from "../invoke/mod.ts";
import { liveSettings } from "./live_settings.ts";
import { DEFAULT_SERVER_LIMITS } from "./server_guard.ts";

Deno.test("live settings: flags are the startup values; each name reaches its part, the invoker once bound", () => {
  const flags = {
    logLevel: "info" as const,
    serverLimits: { ...DEFAULT_SERVER_LIMITS, headerTimeoutMs: 5_000 },
  };
  const levels: string[] = [];
  const live = liveSettings(flags, (level) => levels.push(level));
  assertEquals(live.flagSettings["log.level"], "info");
  assertEquals(live.flagSettings["http.headerTimeoutMs"], 5_000);
  assertEquals(
    live.flagSettings["invoke.defaultTimeoutMs"],
    undefined,
    "no flag: the built-in value applies",
  );

  live.apply("log.level", "debug");
  live.apply("http.maxConnections", 64);
  assertEquals([levels, flags.serverLimits.maxConnections], [["debug"], 64]);

  // Before the invoker exists the values wait; the last one per name is applied when it is bound.
  const applied: LiveCallDefaults[] = [];
  live.apply("invoke.defaultTimeoutMs", 1_000);
  live.apply("invoke.defaultTimeoutMs", 2_000);
  live.apply("invoke.maxAttempts", 3);
  live.bindInvoker({ setDefaults: (d) => applied.push(d) });
  assertEquals(applied, [{ defaultTimeoutMs: 2_000 }, { retry: { maxAttempts: 3 } }]);
  live.apply("invoke.maxServing", 10);
  assertEquals(applied.at(-1), { flow: { maxServing: 10 } });
  live.apply("no.such", 1);
  assertEquals(applied.length, 3, "an unknown name changes nothing");
});
