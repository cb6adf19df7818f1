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

Deno.test("--api-host and --app-host: each listener binds its own address, --host is the default of both", () => {
  const plain = parseNodeFlags(REQUIRED);
  assert.deepEqual([plain.host, plain.apiHost, plain.appHost], ["127.0.0.1", "127.0.0.1", "127.0.0.1"]);
  const shared = parseNodeFlags([...REQUIRED, "--host", "0.0.0.0"]);
  assert.deepEqual([shared.apiHost, shared.appHost], ["0.0.0.0", "0.0.0.0"]);
  const split = parseNodeFlags([
    ...REQUIRED,
    "--host",
    "10.0.0.1",
    "--api-host",
    "127.0.0.1",
    "--app-host",
    "[::]",
  ]);
  assert.deepEqual([split.host, split.apiHost, split.appHost], ["10.0.0.1", "127.0.0.1", "::"]);
  for (const flag of ["--host", "--api-host", "--app-host"]) {
    assert.throws(
      () => parseNodeFlags([...REQUIRED, flag, "bad host"]),
      (e: Error) =>
        e.message === `${flag}: "bad host" is not an address to bind (an IP address or a host name)`,
    );
    assert.throws(() => parseNodeFlags([...REQUIRED, flag, ""]), new RegExp(flag.slice(2)));
  }
});
