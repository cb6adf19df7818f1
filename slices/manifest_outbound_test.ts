// The manifest's `outbound` (hosts ctx.infra.http may reach) and `redact` (fields aspects hide) fields:
// carried
// from defineSlice into the manifest, optional (older manifests stay valid), bad entries named by path.

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { describeDefinition } from "./_runtime.ts";
import { defineSlice } from "./_define.ts";
import { manifestFromDescription, manifestProblems } from "./manifest.ts";

const ARTIFACT = { sha256: "a".repeat(64), sizeBytes: 1, builtAt: "2026-01-02T03:04:05.000Z" };

const fetcher = defineSlice({
  coordinates: "org.example:fetcher:1.0.0",
  requires: ["http"],
  outbound: ["api.example.com", "127.0.0.1:9000", "[::1]:8080"],
  redact: ["pin", "card.number"],
  methods: { get: () => 1 },
});

Deno.test("outbound and redact travel from defineSlice into the manifest", () => {
  const manifest = manifestFromDescription(describeDefinition(fetcher), ARTIFACT);
  assertEquals(manifest.outbound, ["api.example.com", "127.0.0.1:9000", "[::1]:8080"]);
  assertEquals(manifest.redact, ["pin", "card.number"]);
  assertEquals(manifestProblems(manifest), []);
  const { outbound: _o, redact: _r, ...older } = manifest;
  assertEquals(manifestProblems(older), [], "a manifest without them stays valid");
});

Deno.test("bad outbound and redact entries are named by path", () => {
  const manifest = manifestFromDescription(describeDefinition(fetcher), ARTIFACT);
  const problems = manifestProblems({
    ...manifest,
    outbound: ["user@host", "host:99999", "ok.example.com"],
    redact: ["card..number", "a b"],
  });
  const paths = problems.map((p) => p.path);
  assert(paths.includes("outbound[0]"), JSON.stringify(problems));
  assert(paths.includes("outbound[1]"), JSON.stringify(problems));
  assert(!paths.includes("outbound[2]"), JSON.stringify(problems));
  assert(paths.includes("redact[0]") && paths.includes("redact[1]"), JSON.stringify(problems));
  assertEquals(manifestProblems({ ...manifest, outbound: "api.example.com" }).map((p) => p.path), [
    "outbound",
  ]);
});
