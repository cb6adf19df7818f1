import { deepEqual, equal, match, throws } from "node:assert/strict";
import { failedGuard, jobsProblems, machinesProblems } from "./_machines.ts";
import { defineSlice } from "./mod.ts";

const order = {
  initial: "created",
  states: {
    created: {
      on: { pay: { target: "paid", guard: { field: "amount", op: "gte", value: 1 } }, expire: "expired" },
      timeout: { afterMs: 1000, event: "expire" },
    },
    paid: { onEnter: "hook" },
    expired: {},
  },
};

Deno.test("machines: a valid declaration normalizes to the manifest form", () => {
  const { problems, machines } = machinesProblems({ order }, "machines", new Set(["hook"]));
  deepEqual(problems, []);
  deepEqual(machines.order.states.created.on.expire, { target: "expired", guard: [] });
  deepEqual(machines.order.states.created.on.pay.guard, [{ field: "amount", op: "gte", value: 1 }]);
  equal(machines.order.states.paid.onEnter, "hook");
});

Deno.test("machines: each problem names its path", () => {
  const cases: Array<[unknown, string, RegExp]> = [
    [{ order: { ...order, initial: "nowhere" } }, "machines.order.initial", /must name one of the states/],
    [
      { order: { initial: "a", states: { a: { on: { go: "b" } } } } },
      "machines.order.states.a.on.go",
      /must name a target state/,
    ],
    [
      {
        order: {
          initial: "a",
          states: { a: { on: { go: { target: "a", guard: { field: "x", op: "like" } } } } },
        },
      },
      "machines.order.states.a.on.go.guard.op",
      /must be one of eq/,
    ],
    [
      { order: { initial: "a", states: { a: { timeout: { afterMs: 0, event: "t" } } } } },
      "machines.order.states.a.timeout.afterMs",
      /integer from 1/,
    ],
    [
      { order: { initial: "a", states: { a: { timeout: { afterMs: 5, event: "t" } } } } },
      "machines.order.states.a.timeout.event",
      /has no transition from a/,
    ],
    [
      { order: { initial: "a", states: { a: { onEnter: "missing" } } } },
      "machines.order.states.a.onEnter",
      /method/,
    ],
    [
      { order: { initial: "a", states: { a: { exit: "x" } } } },
      "machines.order.states.a.exit",
      /not a state field/,
    ],
  ];
  for (const [value, path, message] of cases) {
    const { problems } = machinesProblems(value, "machines", new Set(["hook"]));
    equal(problems[0]?.path, path, JSON.stringify(problems));
    match(problems[0].message, message);
  }
});

Deno.test("jobs: declarations are checked", () => {
  deepEqual(
    jobsProblems({ nightly: { cron: "0 3 * * *", method: "run" } }, "jobs", new Set(["run"])).problems,
    [],
  );
  const bad = jobsProblems(
    { nightly: { cron: "0 3 * *", method: "walk", misfire: "never" } },
    "jobs",
    new Set(["run"]),
  );
  deepEqual(bad.problems.map((p) => p.path), [
    "jobs.nightly.cron",
    "jobs.nightly.method",
    "jobs.nightly.misfire",
  ]);
});

Deno.test("guards: every condition must hold", () => {
  const guards = [{ field: "amount", op: "gte" as const, value: 10 }, {
    field: "card.kind",
    op: "in" as const,
    value: ["visa"],
  }];
  equal(failedGuard(guards, { amount: 12, card: { kind: "visa" } }), undefined);
  equal(failedGuard(guards, { amount: 9, card: { kind: "visa" } })?.field, "amount");
  equal(failedGuard(guards, { amount: 10, card: { kind: "amex" } })?.field, "card.kind");
  equal(failedGuard([{ field: "x", op: "exists" }], {})?.op, "exists");
  equal(failedGuard([{ field: "x", op: "absent" }], {}), undefined);
});

Deno.test("defineSlice refuses a bad machine with its path", () => {
  throws(
    () =>
      defineSlice({
        coordinates: "org.example:m:1.0.0",
        methods: { run: () => 1 },
        machines: { m: { initial: "x", states: { y: {} } } },
      }),
    /machines\.m\.initial must name one of the states \(y\)/,
  );
});
