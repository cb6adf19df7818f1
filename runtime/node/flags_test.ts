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

Deno.test("--api-host and --app-host: one address per listener, --host the default of both", () => {
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

Deno.test("HTTP server limits: defaults, each flag read, bad values refused naming the flag", () => {
  const limits = parseNodeFlags(REQUIRED).serverLimits;
  assert.deepEqual(limits, {
    headerTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    idleTimeoutMs: 60_000,
    maxConnections: 4096,
  });
  const set = parseNodeFlags([
    ...REQUIRED,
    ...["--header-timeout-ms", "500", "--body-timeout-ms", "600", "--idle-timeout-ms", "700"],
    ...["--max-connections", "8"],
  ]).serverLimits;
  assert.deepEqual(set, { headerTimeoutMs: 500, bodyTimeoutMs: 600, idleTimeoutMs: 700, maxConnections: 8 });
  for (const flag of ["--header-timeout-ms", "--body-timeout-ms", "--idle-timeout-ms", "--max-connections"]) {
    assert.throws(
      () => parseNodeFlags([...REQUIRED, flag, "0"]),
      (e: Error) => e.message.startsWith(`${flag}: "0"`),
    );
    assert.throws(() => parseNodeFlags([...REQUIRED, flag, "1.5"]), new RegExp(flag));
  }
  assert.equal(parseNodeFlags(REQUIRED).appGuard, true);
  assert.equal(parseNodeFlags([...REQUIRED, "--app-guard", "off"]).appGuard, false);
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--app-guard", "no"]),
    /--app-guard: "no" is not on or off/,
  );
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--idle-timeout-ms", "99999999999999"]),
    (e: Error) => e.message === "--idle-timeout-ms: 99999999999999 is over 2147483647 ms",
  );
});

Deno.test("--tls-cert/--tls-key: both or neither; --tls-ca only with them; plain HTTP by default", () => {
  assert.equal(parseNodeFlags(REQUIRED).tls, undefined);
  assert.deepEqual(parseNodeFlags([...REQUIRED, "--tls-cert", "c.pem", "--tls-key", "k.pem"]).tls, {
    certFile: "c.pem",
    keyFile: "k.pem",
  });
  assert.deepEqual(
    parseNodeFlags([...REQUIRED, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem"]).tls,
    { certFile: "c.pem", keyFile: "k.pem", caFile: "ca.pem" },
  );
  assert.throws(() => parseNodeFlags([...REQUIRED, "--tls-cert", "c.pem"]), /--tls-key: is required/);
  assert.throws(() => parseNodeFlags([...REQUIRED, "--tls-key", "k.pem"]), /--tls-cert: is required/);
  assert.throws(() => parseNodeFlags([...REQUIRED, "--tls-ca", "ca.pem"]), /--tls-ca: needs --tls-cert/);
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--tls-cert", "", "--tls-key", "k.pem"]),
    /--tls-cert: needs a file/,
  );
});

Deno.test("--traces on|off and --otlp-endpoint: on and no export by default; bad values refused naming the flag", () => {
  const defaults = parseNodeFlags(REQUIRED);
  assert.equal(defaults.traces, true);
  assert.equal(defaults.otlpEndpoint, undefined);
  assert.equal(parseNodeFlags([...REQUIRED, "--traces", "off"]).traces, false);
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--traces", "maybe"]),
    (e: Error) => e.message === `--traces: "maybe" is not on or off`,
  );
  assert.equal(
    parseNodeFlags([...REQUIRED, "--otlp-endpoint", "http://127.0.0.1:4318"]).otlpEndpoint,
    "http://127.0.0.1:4318/v1/traces",
  );
  assert.equal(
    parseNodeFlags([...REQUIRED, "--otlp-endpoint", "https://otel.example/ingest/traces"]).otlpEndpoint,
    "https://otel.example/ingest/traces",
  );
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--otlp-endpoint", "collector:4318"]),
    /--otlp-endpoint: "collector:4318" is not an http:\/\/ or https:\/\/ URL/,
  );
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--otlp-endpoint", "nowhere"]),
    /--otlp-endpoint: "nowhere" is not a URL/,
  );
  assert.equal(defaults.traceRingSpans, 16_384);
  assert.equal(parseNodeFlags([...REQUIRED, "--trace-ring-spans", "100000"]).traceRingSpans, 100_000);
  assert.throws(() => parseNodeFlags([...REQUIRED, "--trace-ring-spans", "0"]), /--trace-ring-spans/);
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--trace-ring-spans", "300000"]),
    /--trace-ring-spans: 300000 is more than 262144/,
  );
});
