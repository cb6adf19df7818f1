import assert from "node:assert/strict";
import { parseNodeFlags } from "./flags.ts";

const REQUIRED = [
  ...["--id", "n1", "--peers", "n1@127.0.0.1:7101"],
  ...["--data-dir", "/tmp/x", "--secret-file", "/tmp/s"],
];

Deno.test("--log-format: text by default, json on request, anything else refused naming the flag", () => {
  assert.equal(parseNodeFlags(REQUIRED).logFormat, "text");
  assert.equal(parseNodeFlags([...REQUIRED, "--log-format", "json"]).logFormat, "json");
  assert.equal(parseNodeFlags([...REQUIRED, "--log-format", "text"]).logFormat, "text");
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--log-format", "xml"]),
    (e: Error) => e.message === `--log-format: "xml" is not text or json`,
  );
  assert.throws(() => parseNodeFlags([...REQUIRED, "--log-format"]), /log-format/);
});
