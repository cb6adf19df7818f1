import { deepStrictEqual, equal } from "node:assert/strict";
import { VersionChooser, type VersionWeightsRecord } from "./weights.ts";

const record = (oldWeight: number, newWeight: number, updatedAt = 1): VersionWeightsRecord => ({
  oldVersion: "1.0.0",
  newVersion: "1.1.0",
  oldWeight,
  newWeight,
  updatedAt,
});
const both = (_version: string) => true;

function picks(chooser: VersionChooser, r: VersionWeightsRecord, n: number, available = both): string[] {
  return Array.from({ length: n }, () => chooser.choose("g:a", r, available)!);
}

Deno.test("1:3 (new:old) sends exactly one request in four to the new version, interleaved", () => {
  const chooser = new VersionChooser();
  const sequence = picks(chooser, record(3, 1), 8);
  deepStrictEqual(sequence, ["1.0.0", "1.0.0", "1.1.0", "1.0.0", "1.0.0", "1.0.0", "1.1.0", "1.0.0"]);
  const many = picks(chooser, record(3, 1), 4000);
  equal(many.filter((v) => v === "1.1.0").length, 1000);
});

Deno.test("other ratios are exact over a whole cycle", () => {
  for (const [oldWeight, newWeight] of [[1, 1], [2, 3], [99, 1], [1, 99], [7, 5]]) {
    const chooser = new VersionChooser();
    const total = oldWeight + newWeight;
    const sequence = picks(chooser, record(oldWeight, newWeight), total * 10);
    equal(sequence.filter((v) => v === "1.1.0").length, newWeight * 10, `${newWeight}:${oldWeight}`);
  }
});

Deno.test("a weight of 0 sends everything to the other version", () => {
  const chooser = new VersionChooser();
  deepStrictEqual(new Set(picks(chooser, record(0, 5), 20)), new Set(["1.1.0"]));
  deepStrictEqual(new Set(picks(chooser, record(5, 0), 20)), new Set(["1.0.0"]));
});

Deno.test("a version without a live instance is skipped; neither available gives undefined", () => {
  const chooser = new VersionChooser();
  const onlyOld = (v: string) => v === "1.0.0";
  deepStrictEqual(new Set(picks(chooser, record(1, 3), 10, onlyOld)), new Set(["1.0.0"]));
  // Even the zero-weighted version serves when it is the only one left.
  const onlyNew = (v: string) => v === "1.1.0";
  deepStrictEqual(new Set(picks(chooser, record(1, 0), 5, onlyNew)), new Set(["1.1.0"]));
  equal(chooser.choose("g:a", record(1, 1), () => false), undefined);
});

Deno.test("a changed record restarts the interleaving; slices interleave independently", () => {
  const chooser = new VersionChooser();
  picks(chooser, record(3, 1, 1), 3);
  deepStrictEqual(picks(chooser, record(1, 1, 2), 2), ["1.0.0", "1.1.0"]);
  equal(chooser.choose("other:slice", record(1, 1, 2), both), "1.0.0");
  chooser.retain(new Set());
  equal(chooser.choose("g:a", record(1, 1, 2), both), "1.0.0");
});
