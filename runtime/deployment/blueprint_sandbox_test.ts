import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { parseBlueprint } from "./blueprint.ts";

const HEAD = `id = "org.example:shop:1.0.0"\n\n[[slices]]\nartifact = "org.example:orders:1.2.0"\n`;

Deno.test("blueprint: trusted and the CPU limits of a slice become its sandbox settings", () => {
  const bp = parseBlueprint(
    HEAD + `trusted = true\ncpuSoftShare = 0.5\ncpuHardShare = 1\ncpuWindowMs = 2000\ncallCpuMs = 0\n` +
      `\n[[slices]]\nartifact = "org.example:inventory:1.0.0"\n`,
  );
  assert.deepEqual(bp.slices[0].sandbox, {
    trusted: true,
    limits: { softCpuShare: 0.5, maxCpuShare: 1, cpuWindowMs: 2000, maxCallCpuMs: 0 },
  });
  assert.equal(bp.slices[1].sandbox, undefined);
});

Deno.test("blueprint: bad sandbox keys are named with their line and column", () => {
  const cases: Array<[string, RegExp]> = [
    [`trusted = "yes"`, /slices\[0\]\.trusted: must be true or false, got the string "yes"/],
    [
      `cpuSoftShare = -0.5`,
      /slices\[0\]\.cpuSoftShare: must be a share of one CPU core from 0 \(off\) to 64/,
    ],
    [`cpuHardShare = "all"`, /slices\[0\]\.cpuHardShare: must be a share/],
    [
      `cpuWindowMs = 100`,
      /slices\[0\]\.cpuWindowMs: must be an integer from 500 to 3600000 \(ms\), got the integer 100/,
    ],
    [`callCpuMs = 1.5`, /slices\[0\]\.callCpuMs: must be 0 \(off\) or an integer from 100/],
    [`cpuSoftShare = 0.9\ncpuHardShare = 0.5`, /cpuSoftShare: \(0\.9\) must be below cpuHardShare \(0\.5\)/],
  ];
  for (const [lines, pattern] of cases) {
    assert.throws(() => parseBlueprint(HEAD + lines + "\n"), (e: unknown) => {
      assert.ok(e instanceof AetherError);
      assert.equal(e.status, 400);
      assert.match(e.message, pattern);
      assert.equal(e.extra.line, 5, `${lines}: ${e.message}`);
      return true;
    });
  }
});
