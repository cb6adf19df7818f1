import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { MAX_BLUEPRINT_BYTES, parseBlueprint, validateBlueprint } from "./blueprint.ts";
import { locate } from "./_toml_locate.ts";

/** Asserts that parsing fails with a 400 whose first problem is at `line`:`column` on `field`. */
function rejects(source: string, line: number, column: number, field: string, pattern: RegExp): void {
  assert.throws(() => parseBlueprint(source), (e: unknown) => {
    assert.ok(e instanceof AetherError, `expected an AetherError, got ${e}`);
    assert.equal(e.code, "bad_request");
    assert.equal(e.status, 400);
    assert.match(e.message, pattern);
    assert.match(e.message, new RegExp(`^blueprint line ${line}, column ${column}: `));
    assert.deepEqual({ line: e.extra.line, column: e.extra.column, field: e.extra.field }, {
      line,
      column,
      field,
    });
    return true;
  });
}

const GOOD = `# the shop
id = "org.example:shop:1.0.0"

[[slices]]
artifact = "org.example:orders:1.2.0"
instances = 3
min = 2
max = 6
requires = ["cache", "pub-sub"]

[[slices]]
artifact = "org.example:inventory:1.0.0-rc.1"
`;

Deno.test("blueprint: a valid blueprint parses, with defaults applied", () => {
  const bp = parseBlueprint(GOOD);
  assert.equal(bp.id, "org.example:shop:1.0.0");
  assert.deepEqual(bp.slices, [
    { artifact: "org.example:orders:1.2.0", instances: 3, min: 2, max: 6, requires: ["cache", "pub-sub"] },
    { artifact: "org.example:inventory:1.0.0-rc.1", instances: 1, requires: [] },
  ]);
  assert.equal(bp.source, GOOD);
});

Deno.test("blueprint: inline tables and quoted keys are the same document", () => {
  const bp = parseBlueprint(`"id" = 'g:app:1.0.0'\nslices = [ { artifact = "g:a:1.0.0", instances = 2 } ]\n`);
  assert.deepEqual(bp.slices, [{ artifact: "g:a:1.0.0", instances: 2, requires: [] }]);
});

Deno.test("blueprint: a TOML syntax error carries smol-toml's line and column", () => {
  rejects(`id = "g:app:1.0.0"\n[[slices]]\nartifact = \n`, 3, 12, "", /TOML syntax: invalid value/);
  rejects(`id = "g:app:1.0.0"\nid = "g:app:2.0.0"\n`, 2, 1, "", /TOML syntax: .*redefine/);
});

Deno.test("blueprint: every semantic error names the field and points at it", () => {
  const cases: [string, number, number, string, RegExp][] = [
    // unknown keys: at the key
    [
      `id = "g:app:1.0.0"\ncolour = "red"\n[[slices]]\nartifact = "g:a:1.0.0"\n`,
      2,
      1,
      "colour",
      /unknown key "colour" at the top level \(known keys: id, slices\)/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\n  replicas = 2\n`,
      4,
      3,
      "slices[0].replicas",
      /unknown key "replicas" in slices\[0\]/,
    ],
    [
      `id = "g:app:1.0.0"\n[deployment]\nstrategy = "canary"\n[[slices]]\nartifact = "g:a:1.0.0"\n`,
      2,
      1,
      "deployment",
      /unknown key "deployment"/,
    ],
    // id
    [`[[slices]]\nartifact = "g:a:1.0.0"\n`, 1, 1, "id", /id: is missing/],
    [
      `id = 7\n[[slices]]\nartifact = "g:a:1.0.0"\n`,
      1,
      6,
      "id",
      /id: must be a string "group:artifact:version", got the integer 7/,
    ],
    [`id = "shop"\n[[slices]]\nartifact = "g:a:1.0.0"\n`, 1, 6, "id", /"shop" is not group:artifact:version/],
    [
      `id = "g:app:1.0"\n[[slices]]\nartifact = "g:a:1.0.0"\n`,
      1,
      6,
      "id",
      /version "1.0" is not a semantic version/,
    ],
    // slices
    [
      `id = "g:app:1.0.0"\n`,
      1,
      1,
      "slices",
      /slices: is missing: a blueprint needs at least one \[\[slices\]\]/,
    ],
    [
      `id = "g:app:1.0.0"\nslices = "orders"\n`,
      2,
      10,
      "slices",
      /must be an array of tables \(\[\[slices\]\]\), got the string "orders"/,
    ],
    [`id = "g:app:1.0.0"\nslices = []\n`, 2, 10, "slices", /must list at least one slice/],
    [
      `id = "g:app:1.0.0"\n[slices]\nartifact = "g:a:1.0.0"\n`,
      2,
      1,
      "slices",
      /must be an array of tables, got a table|must be an array of tables/,
    ],
    // artifact
    [
      `id = "g:app:1.0.0"\n[[slices]]\ninstances = 2\n`,
      2,
      1,
      "slices[0].artifact",
      /slices\[0\].artifact: is missing/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = ["g:a:1.0.0"]\n`,
      3,
      12,
      "slices[0].artifact",
      /got an array/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "G:a:1.0.0"\n`,
      3,
      12,
      "slices[0].artifact",
      /group "G" in "G:a:1.0.0" is not valid/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:latest"\n`,
      3,
      12,
      "slices[0].artifact",
      /"latest" is not a semantic version/,
    ],
    // instances, min, max
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\ninstances = 2.0\n`,
      4,
      13,
      "slices[0].instances",
      /from 1 to 10000, got the float 2/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\ninstances = 0\n`,
      4,
      13,
      "slices[0].instances",
      /got the integer 0/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\ninstances = "3"\n`,
      4,
      13,
      "slices[0].instances",
      /got the string "3"/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\ninstances = 10001\n`,
      4,
      13,
      "slices[0].instances",
      /from 1 to 10000/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\nmin = -1\n`,
      4,
      7,
      "slices[0].min",
      /from 0 to 10000, got the integer -1/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\nmax = 0\n`,
      4,
      7,
      "slices[0].max",
      /from 1 to 10000/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\ninstances = 2\nmin = 3\nmax = 2\n`,
      5,
      7,
      "slices[0].min",
      /min \(3\) must not exceed max \(2\)/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\ninstances = 1\nmin = 2\n`,
      4,
      13,
      "slices[0].instances",
      /instances \(1\) is below min \(2\)/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\nmin = 2\n`,
      4,
      7,
      "slices[0].min",
      /instances \(1\) is below min \(2\)/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\ninstances = 5\nmax = 4\n`,
      4,
      13,
      "slices[0].instances",
      /instances \(5\) is above max \(4\)/,
    ],
    // requires
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\nrequires = "cache"\n`,
      4,
      12,
      "slices[0].requires",
      /must be an array of service names/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\nrequires = ["cache", "Pub_Sub"]\n`,
      4,
      22,
      "slices[0].requires[1]",
      /must be a service name .* got the string "Pub_Sub"/,
    ],
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\nrequires = [\n  "cache",\n  "cache",\n]\n`,
      6,
      3,
      "slices[0].requires[1]",
      /"cache" is listed twice/,
    ],
    // the same slice twice, even at another version: at the second one
    [
      `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\n[[slices]]\nartifact = "g:a:2.0.0"\n`,
      5,
      12,
      "slices[1].artifact",
      /g:a is already listed in slices\[0\]/,
    ],
    // inside an inline table
    [
      `id = "g:app:1.0.0"\nslices = [{ artifact = "g:a:1.0.0", count = 2 }]\n`,
      2,
      37,
      "slices[0].count",
      /unknown key "count"/,
    ],
  ];
  for (const [source, line, column, field, pattern] of cases) {
    try {
      rejects(source, line, column, field, pattern);
    } catch (e) {
      throw new Error(`for ${JSON.stringify(source)}: ${(e as Error).message}`);
    }
  }
});

Deno.test("blueprint: every problem is reported, in document order", () => {
  const source =
    `id = "g:app:1.0.0"\n[[slices]]\nartifact = "g:a:1.0.0"\nbogus = 1\ninstances = 0\n[[slices]]\nartifact = "nope"\n`;
  const result = validateBlueprint(source);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(
    result.problems.map((p) => [p.field, p.line, p.column]),
    [["slices[0].bogus", 4, 1], ["slices[0].instances", 5, 13], ["slices[1].artifact", 7, 12]],
  );
  assert.match(
    (() => {
      try {
        parseBlueprint(source);
        return "";
      } catch (e) {
        return (e as Error).message;
      }
    })(),
    /\(and 2 more problem\(s\)\)$/,
  );
});

Deno.test("blueprint: input that is not TOML text, or too large, is refused at 1:1", () => {
  rejects(42 as unknown as string, 1, 1, "", /a blueprint must be TOML text/);
  rejects(`# ${"x".repeat(MAX_BLUEPRINT_BYTES)}\n`, 1, 1, "", /bytes; the limit is 262144/);
});

Deno.test("toml locate: keys, values, array elements and table headers by path", () => {
  const positions = locate(
    `a = 1\n[t.u]\n"quoted key" = """multi\nline = 2\n"""\n[[arr]]\nx = [1, { y = 2 }]\n[[arr]]\n[arr.sub]\nz = 'lit # not a comment'\n`,
  );
  const at = (path: string) => {
    const p = positions.get(path);
    return p ? [p.key.line, p.key.column, p.value.line, p.value.column] : undefined;
  };
  assert.deepEqual(at("a"), [1, 1, 1, 5]);
  assert.deepEqual(at("t.u"), [2, 1, 2, 1]);
  assert.deepEqual(at("t.u.quoted key"), [3, 1, 3, 16]);
  assert.equal(at("line"), undefined, "text inside a multi-line string is not a key");
  assert.deepEqual(at("arr[0]"), [6, 1, 6, 1]);
  assert.deepEqual(at("arr[0].x[1].y"), [7, 11, 7, 15]);
  assert.deepEqual(at("arr[1].sub.z"), [10, 1, 10, 5]);
});

Deno.test("placement: nodeSelector is require's other name; both at once, or a bad label, is refused where", () => {
  const withPlacement = (placement: string) =>
    `id = "org.example:app:1.0.0"\n\n[[slices]]\nartifact = "org.example:a:1.0.0"\nplacement = ${placement}\n`;
  const bp = parseBlueprint(withPlacement(`{ spread = "zone", nodeSelector = { disk = "ssd" } }`));
  assert.deepEqual(bp.slices[0].placement, { spread: "zone", require: { disk: "ssd" } });
  assert.deepEqual(
    parseBlueprint(withPlacement(`{ require = { disk = "ssd" } }`)).slices[0].placement,
    { require: { disk: "ssd" } },
  );
  const both = validateBlueprint(
    withPlacement(`{ require = { disk = "ssd" }, nodeSelector = { disk = "hdd" } }`),
  );
  assert.equal(both.ok, false);
  if (!both.ok) {
    assert.deepEqual(
      both.problems.map((p) => [p.field, p.message]),
      [[
        "slices[0].placement.nodeSelector",
        "slices[0].placement.nodeSelector: is another name for require: give one of them, not both",
      ]],
    );
  }
  const bad = validateBlueprint(withPlacement(`{ nodeSelector = { disk = "SSD!" } }`));
  assert.equal(bad.ok, false);
  if (!bad.ok) assert.equal(bad.problems[0].field, "slices[0].placement.nodeSelector.disk");
  const unknown = validateBlueprint(withPlacement(`{ selector = { disk = "ssd" } }`));
  assert.equal(unknown.ok, false);
  if (!unknown.ok) {
    assert.match(
      unknown.problems[0].message,
      /not a placement rule \(spread, require, nodeSelector, affinity, antiAffinity\)/,
    );
  }
});
