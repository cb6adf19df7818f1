import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { encodeValue } from "../model/mod.ts";
import { ManifestCatalog } from "./artifacts.ts";
import { parseBlueprint } from "./blueprint.ts";
import { blueprintRecordOf, expandBlueprint } from "./expand.ts";
import { manifest } from "./_testing.ts";

const CATALOG = new ManifestCatalog([
  manifest("shop:orders:1.0.0", {
    calls: { inventory: ["shop:inventory", "^1.0.0"], payments: ["shop:payments", "^2.0.0"] },
  }),
  manifest("shop:inventory:1.0.0", { calls: { db: ["shop:db", "^1.0.0"] } }),
  manifest("shop:inventory:1.2.0", { calls: { db: ["shop:db", "^1.1.0"] } }),
  manifest("shop:inventory:2.0.0", { calls: { db: ["shop:db", "^1.0.0"] } }),
  manifest("shop:payments:2.0.0", { calls: { db: ["shop:db", "^1.0.0"] } }),
  manifest("shop:payments:2.3.1"),
  manifest("shop:db:1.0.0"),
  manifest("shop:db:1.1.0"),
  manifest("shop:db:1.4.2"),
  manifest("shop:db:2.0.0"),
  manifest("shop:audit:1.0.0"),
]);

function blueprint(slices: string): ReturnType<typeof parseBlueprint> {
  return parseBlueprint(`id = "shop:app:1.0.0"\n${slices}`);
}

function expansionError(fn: () => unknown): AetherError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof AetherError, `expected an AetherError, got ${e}`);
    assert.equal(e.code, "bad_request");
    return e;
  }
  assert.fail("expected expansion to fail");
}

Deno.test("expand: adds every slice called, transitively, at the highest version in range, dependencies first", () => {
  const expanded = expandBlueprint(
    blueprint(
      `[[slices]]\nartifact = "shop:orders:1.0.0"\ninstances = 3\n[[slices]]\nartifact = "shop:audit:1.0.0"\n`,
    ),
    CATALOG,
  );
  assert.deepEqual(expanded.slices.map((s) => [s.artifact, s.instances, s.transitive]), [
    ["shop:db:1.4.2", 1, true],
    ["shop:inventory:1.2.0", 1, true],
    ["shop:payments:2.3.1", 1, true],
    ["shop:orders:1.0.0", 3, false],
    ["shop:audit:1.0.0", 1, false],
  ]);
  assert.deepEqual(expanded.calls["shop:orders:1.0.0"], ["shop:inventory:1.2.0", "shop:payments:2.3.1"]);
  assert.deepEqual(expanded.calls["shop:inventory:1.2.0"], ["shop:db:1.4.2"]);
  // The stored record validates.
  assert.ok(encodeValue("blueprint", blueprintRecordOf(expanded, 5)).byteLength > 0);
});

Deno.test("expand: a version every range that reaches it accepts; a listed slice keeps its listed version", () => {
  const expanded = expandBlueprint(
    blueprint(`[[slices]]\nartifact = "shop:orders:1.0.0"\n[[slices]]\nartifact = "shop:inventory:1.0.0"\n`),
    CATALOG,
  );
  // inventory 1.0.0 asks ^1.0.0 of db, payments 2.3.1 asks nothing: the highest 1.x.
  assert.deepEqual(expanded.slices.map((s) => s.artifact), [
    "shop:db:1.4.2",
    "shop:inventory:1.0.0",
    "shop:payments:2.3.1",
    "shop:orders:1.0.0",
  ]);
  assert.equal(expanded.slices.find((s) => s.artifact.startsWith("shop:inventory"))!.transitive, false);
});

Deno.test("expand: a called slice already deployed keeps its version when it is in range", () => {
  const bp = blueprint(`[[slices]]\nartifact = "shop:inventory:1.0.0"\n`);
  const deployed = (base: string) => base === "shop:db" ? "1.1.0" : undefined;
  assert.equal(expandBlueprint(bp, CATALOG, { deployed }).slices[0].artifact, "shop:db:1.1.0");
  const outOfRange = (base: string) => base === "shop:db" ? "2.0.0" : undefined;
  assert.equal(expandBlueprint(bp, CATALOG, { deployed: outOfRange }).slices[0].artifact, "shop:db:1.4.2");
});

Deno.test("expand: the choice is repeated until it settles (a lower version may call other slices)", () => {
  const catalog = new ManifestCatalog([
    manifest("x:a:1.0.0", { calls: { b: ["x:b", "^1.0.0"], e: ["x:e", "^1.0.0"] } }),
    manifest("x:b:1.0.0"),
    manifest("x:b:1.1.0", { calls: { d: ["x:d", "^1.0.0"] } }),
    manifest("x:d:1.0.0"),
    manifest("x:e:1.0.0", { calls: { b: ["x:b", "~1.0.0"] } }),
  ]);
  const expanded = expandBlueprint(
    parseBlueprint(`id = "x:app:1.0.0"\n[[slices]]\nartifact = "x:a:1.0.0"\n`),
    catalog,
  );
  assert.deepEqual(expanded.slices.map((s) => s.artifact), ["x:b:1.0.0", "x:e:1.0.0", "x:a:1.0.0"]);
});

Deno.test("expand: a listed artifact that is not published is named, with its position", () => {
  const e = expansionError(() =>
    expandBlueprint(
      blueprint(`[[slices]]\nartifact = "shop:audit:1.0.0"\n[[slices]]\nartifact = "shop:orders:9.9.9"\n`),
      CATALOG,
    )
  );
  assert.match(e.message, /^blueprint shop:app:1.0.0, line 5, column 12: shop:orders:9.9.9 is not published/);
  assert.match(e.message, /published versions: 1.0.0/);
  assert.deepEqual([e.extra.field, e.extra.line, e.extra.column], ["slices[1].artifact", 5, 12]);
  const never = expansionError(() =>
    expandBlueprint(blueprint(`[[slices]]\nartifact = "shop:nope:1.0.0"\n`), CATALOG)
  );
  assert.match(never.message, /shop:nope:1.0.0 is not published \(no version of it is\)/);
});

Deno.test("expand: a called slice with no published version is named with who called it", () => {
  const catalog = new ManifestCatalog([
    manifest("x:a:1.0.0", { calls: { b: ["x:b", "^1.0.0"] } }),
    manifest("x:b:1.0.0", { calls: { ghost: ["x:ghost", "^3.0.0"] } }),
  ]);
  const e = expansionError(() =>
    expandBlueprint(parseBlueprint(`id = "x:app:1.0.0"\n[[slices]]\nartifact = "x:a:1.0.0"\n`), catalog)
  );
  assert.match(
    e.message,
    /x:ghost is called \(\^3.0.0 from x:b:1.0.0 \(reached through x:a:1.0.0\)\) but no version of it is published/,
  );
  // Located at the listed slice whose calls lead to it.
  assert.deepEqual([e.extra.field, e.extra.line, e.extra.column], ["slices[0].artifact", 3, 12]);
});

Deno.test("expand: ranges nothing satisfies are named, each with its caller", () => {
  const catalog = new ManifestCatalog([
    manifest("x:a:1.0.0", { calls: { lib: ["x:lib", "^1.0.0"] } }),
    manifest("x:c:1.0.0", { calls: { lib: ["x:lib", "^2.0.0"] } }),
    manifest("x:lib:1.5.0"),
    manifest("x:lib:2.1.0"),
  ]);
  const e = expansionError(() =>
    expandBlueprint(
      parseBlueprint(
        `id = "x:app:1.0.0"\n[[slices]]\nartifact = "x:a:1.0.0"\n[[slices]]\nartifact = "x:c:1.0.0"\n`,
      ),
      catalog,
    )
  );
  assert.match(
    e.message,
    /no published version of x:lib satisfies every range that reaches it: \^1.0.0 from x:a:1.0.0, \^2.0.0 from x:c:1.0.0; published versions: 1.5.0, 2.1.0/,
  );
  assert.deepEqual([e.extra.field, e.extra.line, e.extra.column], ["slices[0].artifact", 3, 12]);
});

Deno.test("expand: a listed version outside a caller's range is named at its position", () => {
  const e = expansionError(() =>
    expandBlueprint(
      blueprint(
        `[[slices]]\nartifact = "shop:orders:1.0.0"\n[[slices]]\nartifact = "shop:inventory:2.0.0"\n`,
      ),
      CATALOG,
    )
  );
  assert.match(
    e.message,
    /shop:inventory:2.0.0 is listed, but shop:orders:1.0.0 calls shop:inventory \(as "inventory"\) with range \^1.0.0/,
  );
  assert.deepEqual([e.extra.field, e.extra.line, e.extra.column], ["slices[1].artifact", 5, 12]);
});

Deno.test("expand: a cycle is rejected, naming it", () => {
  const catalog = new ManifestCatalog([
    manifest("x:a:1.0.0", { calls: { b: ["x:b", "^1.0.0"] } }),
    manifest("x:b:1.0.0", { calls: { c: ["x:c", "^1.0.0"] } }),
    manifest("x:c:1.0.0", { calls: { a: ["x:a", "^1.0.0"] } }),
  ]);
  const e = expansionError(() =>
    expandBlueprint(parseBlueprint(`id = "x:app:1.0.0"\n[[slices]]\nartifact = "x:a:1.0.0"\n`), catalog)
  );
  assert.match(
    e.message,
    /the slices call each other in a cycle: x:a:1.0.0 → x:b:1.0.0 → x:c:1.0.0 → x:a:1.0.0/,
  );
  assert.deepEqual(e.extra.cycle, ["x:a:1.0.0", "x:b:1.0.0", "x:c:1.0.0", "x:a:1.0.0"]);
  assert.deepEqual([e.extra.field, e.extra.line, e.extra.column], ["slices[0].artifact", 3, 12]);
  // A cycle among called slices only is located at the listed slice that reaches it.
  const below = expansionError(() =>
    expandBlueprint(
      parseBlueprint(`id = "x:app:1.0.0"\n[[slices]]\nartifact = "x:top:1.0.0"\n`),
      new ManifestCatalog([
        manifest("x:top:1.0.0", { calls: { b: ["x:b", "^1.0.0"] } }),
        manifest("x:b:1.0.0", { calls: { c: ["x:c", "^1.0.0"] } }),
        manifest("x:c:1.0.0", { calls: { b: ["x:b", "^1.0.0"] } }),
      ]),
    )
  );
  assert.match(
    below.message,
    /line 3, column 12: the slices call each other in a cycle: x:b:1.0.0 → x:c:1.0.0 → x:b:1.0.0/,
  );
  assert.deepEqual([below.extra.field, below.extra.line], ["slices[0].artifact", 3]);
});
