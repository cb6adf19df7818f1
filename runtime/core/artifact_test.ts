import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  baseOf,
  compareVersions,
  formatCoordinates,
  isCoordinates,
  isVersionRange,
  maxSatisfying,
  parseArtifactBase,
  parseCoordinates,
  parseVersionRange,
  satisfies,
} from "./artifact.ts";
import { AetherError } from "./errors.ts";

function rejects(fn: () => unknown, fragment: string, field?: string) {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof AetherError)) throw new Error(`expected AetherError mentioning "${fragment}"`);
  assertEquals(caught.code, "bad_request");
  if (!caught.message.includes(fragment)) {
    throw new Error(`message "${caught.message}" does not mention "${fragment}"`);
  }
  if (field) assertEquals(caught.extra.field, field);
}

Deno.test("coordinates parse and format round-trip", () => {
  for (
    const text of [
      "org.example:inventory:1.2.0",
      "org.pragmatica-lite.aether.example:inventory:0.0.1-test",
      "acme:place-order:10.20.30-rc.1",
      "a:b:0.0.0",
    ]
  ) {
    assertEquals(formatCoordinates(parseCoordinates(text)), text);
    assertEquals(isCoordinates(text), true);
  }
  assertEquals(parseCoordinates("org.example:inventory:1.2.0"), {
    group: "org.example",
    artifact: "inventory",
    version: "1.2.0",
  });
  assertEquals(baseOf("org.example:inventory:1.2.0"), "org.example:inventory");
});

Deno.test("bad coordinates name the bad part", () => {
  rejects(() => parseCoordinates("org.example:inventory"), "is not group:artifact:version (found 2 part(s)");
  rejects(
    () => parseCoordinates("org.example:inventory:1.0"),
    'version "1.0" is not a semantic version',
    "version",
  );
  rejects(() => parseCoordinates("org.example:inventory:v1.0.0"), 'version "v1.0.0"', "version");
  rejects(() => parseCoordinates("Org.Example:inventory:1.0.0"), 'group "Org.Example"', "group");
  rejects(() => parseCoordinates("org..example:inventory:1.0.0"), 'group "org..example"', "group");
  rejects(() => parseCoordinates(":inventory:1.0.0"), "empty group", "group");
  rejects(() => parseCoordinates("org.example:Inventory:1.0.0"), 'artifact "Inventory"', "artifact");
  rejects(() => parseCoordinates("org.example:inv entory:1.0.0"), 'artifact "inv entory"', "artifact");
  rejects(() => parseCoordinates("org.example::1.0.0"), "empty artifact", "artifact");
  rejects(() => parseCoordinates("org.example:inventory:"), "empty version", "version");
  rejects(() => parseCoordinates("a:b:1.0.0:x"), "found 4 part(s)");
  rejects(
    () => parseCoordinates("X:y:1.0.0", "blueprint slices[2].artifact"),
    "blueprint slices[2].artifact:",
  );
  rejects(() => parseCoordinates("a:b:1.0.0+build.5"), "build metadata", "version");
  assertEquals(isCoordinates("a:b"), false);
});

Deno.test("artifact bases", () => {
  assertEquals(parseArtifactBase("org.example:pricing"), { group: "org.example", artifact: "pricing" });
  rejects(() => parseArtifactBase("org.example:pricing:1.0.0"), "is not group:artifact (found 3 part(s)");
  rejects(() => parseArtifactBase("org.example:Pricing"), 'artifact "Pricing"');
});

Deno.test("version ranges follow npm semver", () => {
  const cases: Array<[string, string, boolean]> = [
    ["^1.2.0", "1.2.0", true],
    ["^1.2.0", "1.9.9", true],
    ["^1.2.0", "2.0.0", false],
    ["^1.2.0", "1.1.9", false],
    ["^0.2.0", "0.2.5", true],
    ["^0.2.0", "0.3.0", false],
    ["~1.2.0", "1.2.9", true],
    ["~1.2.0", "1.3.0", false],
    ["1.2.3", "1.2.3", true],
    ["1.2.3", "1.2.4", false],
    [">=1.0.0 <2.0.0", "1.99.0", true],
    [">=1.0.0 <2.0.0", "2.0.0", false],
    [">=1.0.0 <2.0.0", "0.9.0", false],
    ["^1.2.0", "1.3.0-beta.1", false], // prereleases only match ranges naming the same tuple
    ["^1.3.0-beta.0", "1.3.0-beta.1", true],
    ["*", "5.0.0", true],
  ];
  for (const [range, version, expected] of cases) {
    assertEquals(satisfies(version, range), expected, `${version} in ${range}`);
  }
  assertEquals(parseVersionRange(">=1.0.0 <2.0.0").normalized, ">=1.0.0 <2.0.0");
  assertEquals(isVersionRange("^1.0.0"), true);
  assertEquals(isVersionRange("not a range"), false);
});

Deno.test("bad ranges are named", () => {
  rejects(() => parseVersionRange("^^1"), '"^^1" is not a version range', "range");
  rejects(() => parseVersionRange(""), "expected a version range");
  rejects(() => parseVersionRange("latest"), '"latest" is not a version range');
  rejects(() => satisfies("1.0", "^1.0.0"), 'version "1.0"');
});

Deno.test("maxSatisfying and ordering", () => {
  const versions = ["1.0.0", "1.4.2", "1.10.0", "2.0.0", "garbage", "1.11.0-rc.1"];
  assertEquals(maxSatisfying(versions, "^1.0.0"), "1.10.0");
  assertEquals(maxSatisfying(versions, "~1.4.0"), "1.4.2");
  assertEquals(maxSatisfying(versions, "^3.0.0"), undefined);
  assertEquals(compareVersions("1.10.0", "1.9.0") > 0, true);
  assertEquals(compareVersions("1.0.0-rc.1", "1.0.0") < 0, true);
  assertThrows(() => compareVersions("1", "1.0.0"));
});
