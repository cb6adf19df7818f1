import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { AnswerTooLarge, checkAnswerSize, jsonCharsAtLeast } from "./_runtime.ts";

const SAMPLES: unknown[] = [
  null,
  0,
  -12.5,
  true,
  "",
  "plain",
  'quotes " and \\ and \n',
  "é€😀",
  [],
  [1, "two", null, undefined, () => 3],
  {},
  { a: 1 },
  { a: undefined, b: () => 1, c: Symbol("s"), d: "kept" },
  { nested: { deeper: [{ x: "y" }, [], {}] }, list: Array.from({ length: 3000 }, (_, i) => ({ i })) },
  new Uint8Array([1, 2, 3]),
  new Uint8Array(0),
  new Date(0),
  new Map([["a", 1]]),
  { sku: "MOUSE-WIRELESS", net: 50, total: 60 },
];

Deno.test("response size: the estimate never exceeds the JSON's length", () => {
  for (const value of SAMPLES) {
    const json = JSON.stringify(value) ?? "";
    const least = jsonCharsAtLeast(value, Infinity);
    assert(least <= json.length, `${least} > ${json.length} for ${json.slice(0, 80)}`);
  }
});

Deno.test("response size: large strings and typed arrays are found without JSON, within the walk's budget", () => {
  const limit = 1_000_000;
  assert(jsonCharsAtLeast("x".repeat(limit + 1), limit) > limit);
  assert(jsonCharsAtLeast({ text: "x".repeat(limit) }, limit) > limit);
  assert(jsonCharsAtLeast([["a".repeat(600_000)], { b: "b".repeat(600_000) }], limit) > limit);
  assert(jsonCharsAtLeast(new Uint8Array(200_000), limit) > limit);
  // Past the budget of values looked at, the estimate is a lower bound that JSON then settles.
  const many = Array.from({ length: 100_000 }, () => "0123456789");
  assert(jsonCharsAtLeast(many, limit) < limit);
  const started = performance.now();
  for (let i = 0; i < 100; i++) jsonCharsAtLeast(many, limit);
  assert(performance.now() - started < 500, "the walk is bounded");
  // A getter that throws: no estimate, JSON decides.
  assertEquals(
    jsonCharsAtLeast({
      get boom() {
        throw new Error("boom");
      },
    }, limit),
    0,
  );
});

Deno.test("response size: checkAnswerSize counts UTF-8 bytes", () => {
  checkAnswerSize("a".repeat(100), 100);
  checkAnswerSize("é".repeat(50), 100);
  throws(() => checkAnswerSize("é".repeat(51), 100), (e: AnswerTooLarge) => e.bytes === 102 && !e.atLeast);
  throws(() => checkAnswerSize("a".repeat(101), 100), (e: AnswerTooLarge) => e.bytes === 101 && e.atLeast);
});
