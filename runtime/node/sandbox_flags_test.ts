import assert from "node:assert/strict";
import { parseNodeFlags } from "./flags.ts";

const REQUIRED = [
  ...["--id", "n1", "--peers", "n1@127.0.0.1:7101"],
  ...["--data-dir", "/tmp/x", "--secret-file", "/tmp/s"],
];

Deno.test("--slice-cpu-*: the node's default CPU limits of slices; only those given are set", () => {
  const none = parseNodeFlags(REQUIRED);
  assert.deepEqual([none.sliceLimits, none.trustAllSlices], [{}, false]);
  const flags = parseNodeFlags([
    ...REQUIRED,
    ...["--slice-cpu-soft-share", "0.5", "--slice-cpu-hard-share", "1.5"],
    ...["--slice-cpu-window-ms", "5000", "--slice-call-cpu-ms", "0", "--trust-all-slices"],
  ]);
  assert.deepEqual(flags.sliceLimits, {
    softCpuShare: 0.5,
    maxCpuShare: 1.5,
    cpuWindowMs: 5000,
    maxCallCpuMs: 0,
  });
  assert.equal(flags.trustAllSlices, true);
});

Deno.test("--slice-cpu-*: a bad value is refused naming the flag and the range", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["--slice-cpu-soft-share", "lots", /^--slice-cpu-soft-share: "lots" is not a number$/],
    [
      "--slice-cpu-hard-share",
      "65",
      /^--slice-cpu-hard-share: "65" must be a share of one core from 0 \(off\) to 64/,
    ],
    ["--slice-cpu-window-ms", "100", /^--slice-cpu-window-ms: "100" must be an integer of at least 500 ms/],
    ["--slice-call-cpu-ms", "5", /^--slice-call-cpu-ms: "5" must be 0 \(off\) or an integer from 100/],
  ];
  for (const [flag, value, pattern] of cases) {
    assert.throws(() => parseNodeFlags([...REQUIRED, flag, value]), (e: Error) => {
      assert.match(e.message, pattern);
      return true;
    });
  }
});
