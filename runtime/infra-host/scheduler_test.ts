import { equal, throws } from "node:assert/strict";
import { fireRatePerSecond, jobFromSpec, nextOccurrence } from "./scheduler.ts";

const NOW = Date.UTC(2026, 11, 7, 22, 0, 0, 500);

Deno.test("nextOccurrence: strictly after, UTC unless a time zone", () => {
  equal(nextOccurrence("* * * * * *", undefined, NOW), Date.UTC(2026, 11, 7, 22, 0, 1));
  equal(
    nextOccurrence("* * * * * *", undefined, Date.UTC(2026, 11, 7, 22, 0, 1)),
    Date.UTC(2026, 11, 7, 22, 0, 2),
  );
  equal(nextOccurrence("0 3 * * *", undefined, NOW), Date.UTC(2026, 11, 8, 3, 0, 0));
  equal(nextOccurrence("0 3 * * *", "Europe/Berlin", NOW), Date.UTC(2026, 11, 8, 2, 0, 0));
});

Deno.test("jobFromSpec: every field checked, errors name it", () => {
  const ok = jobFromSpec("org.example", "j", { delayMs: 1000, slice: "s", method: "m" }, "api", NOW);
  equal(ok.nextAtMs, NOW + 1000);
  equal(ok.target.kind === "slice" && ok.target.slice, "org.example:s");
  equal(ok.misfire, "skip");
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ slice: "s", method: "m" }, /exactly one of cron, atMs, delayMs \(got none\)/],
    [{ cron: "* * *", slice: "s", method: "m" }, /must have 5 fields .* has 3/],
    [{ cron: "* * * * 9", slice: "s", method: "m" }, /cron "\* \* \* \* 9"/],
    [
      { cron: "* * * * *", tz: "Mars/Olympus", slice: "s", method: "m" },
      /tz "Mars\/Olympus" is not a known time zone/,
    ],
    [{ delayMs: -1, slice: "s", method: "m" }, /delayMs must be an integer from 0/],
    [{ delayMs: 1, slice: "other.group:s", method: "m" }, /not of group org\.example/],
    [{ delayMs: 1, slice: "s", method: "m", misfire: "x" }, /misfire must be "skip" or "catchup"/],
    [{ delayMs: 1, slice: "s", method: "m", payload: "x".repeat(20_000) }, /payload is over 16384 bytes/],
  ];
  for (const [spec, message] of bad) throws(() => jobFromSpec("org.example", "j", spec, "api", NOW), message);
});

Deno.test("fireRatePerSecond: the fastest a cron job fires", () => {
  equal(fireRatePerSecond({ cron: "* * * * * *" }, NOW), 1);
  equal(fireRatePerSecond({ cron: "*/5 * * * * *" }, NOW), 0.2);
  equal(fireRatePerSecond({ cron: "0,1 * * * * *" }, NOW), 1, "the shortest gap counts");
  equal(fireRatePerSecond({ cron: "0 3 * * *" }, NOW), 1000 / 86_400_000);
  equal(fireRatePerSecond({}, NOW), 0);
});
