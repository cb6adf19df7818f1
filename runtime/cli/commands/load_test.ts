/** `aether load`: every flag checked with a clear message, and a real CLI process against a real server. */

import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { join } from "node:path";
import { CliError } from "../client.ts";
import { DEFAULT_APP_URL, parseLoadArgs } from "./load.ts";
import { runCli } from "../../../tests/_support/cli.ts";

const BASE = ["--rate", "50/s", "--duration", "1s", "--target", "POST /api/v1/orders"];

Deno.test("load flags: defaults, and every value read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const body = join(dir, "order.json.tmpl");
    await Deno.writeTextFile(body, '{"n": ${seq:1}}');
    const parsed = await parseLoadArgs([
      ...BASE,
      "--body",
      body,
      "--url",
      "127.0.0.1:8071,http://127.0.0.1:8072/",
      "--concurrency",
      "64",
      "--timeout",
      "2s",
      "--header",
      "X-Tenant: shop-1",
      "--header",
      "Authorization: Bearer t",
      "--seed",
      "42",
      "--min-success",
      "99.9%",
      "--failover",
    ]);
    assertEquals(parsed.minSuccessPercent, 99.9);
    assertEquals(parsed.load, {
      target: "POST /api/v1/orders",
      urls: ["http://127.0.0.1:8071", "http://127.0.0.1:8072"],
      ratePerSecond: 50,
      durationMs: 1000,
      body: '{"n": ${seq:1}}',
      bodyLabel: `--body ${body}`,
      headers: { "x-tenant": "shop-1", authorization: "Bearer t" },
      concurrency: 64,
      timeoutMs: 2000,
      seed: 42,
      failover: true,
    });
    const defaults = await parseLoadArgs(BASE);
    assertEquals(
      [defaults.load.urls, defaults.load.body, defaults.load.concurrency, defaults.load.timeoutMs],
      [
        [DEFAULT_APP_URL],
        undefined,
        undefined,
        undefined,
      ],
    );
    assertEquals((await parseLoadArgs(BASE, { appUrl: "10.0.0.1:9000" })).load.urls, [
      "http://10.0.0.1:9000",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load flags: each mistake is a usage error (exit 2) that names the flag", async () => {
  const without = (flag: string) => {
    const i = BASE.indexOf(flag);
    return [...BASE.slice(0, i), ...BASE.slice(i + 2)];
  };
  const cases: Array<[string[], string]> = [
    [without("--rate"), "load: --rate is required (for example --rate 200/s)"],
    [without("--duration"), "load: --duration is required (for example --duration 30s)"],
    [without("--target"), 'load: --target is required (for example --target "POST /api/v1/orders")'],
    [[...BASE, "--rate", "lots"], 'load: --rate "lots" is not a rate like 200/s, 6000/m or 200'],
    [[...BASE, "--duration", "0s"], 'load: --duration "0s" must be above 0 and at most 24h'],
    [
      [...BASE, "--target", "/api/v1/orders"],
      'load: --target "/api/v1/orders" is not "METHOD /path" with METHOD one of GET, POST, PUT, PATCH, DELETE, ' +
      "HEAD, OPTIONS",
    ],
    [[...BASE, "--url", "gopher://x"], 'load: --url "gopher://x" must be http:// or https://'],
    [[...BASE, "--url", "127.0.0.1:1,http://127.0.0.1:1/"], "load: --url lists http://127.0.0.1:1 twice"],
    [[...BASE, "--concurrency", "0"], 'load: --concurrency "0" is not an integer from 1 to 100000'],
    [[...BASE, "--concurrency", "ten"], 'load: --concurrency "ten" is not an integer from 1 to 100000'],
    [[...BASE, "--timeout", "soon"], 'load: --timeout "soon" is not a duration like 30s, 500ms, 5m or 1h'],
    [[...BASE, "--timeout", "11m"], 'load: --timeout "11m" must be at most 10m'],
    [[...BASE, "--header", "no colon"], 'load: --header "no colon" is not "Name: value"'],
    [[...BASE, "--seed", "4294967296"], 'load: --seed "4294967296" is not an integer from 0 to 4294967295'],
    [[...BASE, "--min-success", "101"], 'load: --min-success "101" is not a percentage from 0 to 100'],
    [[...BASE, "--body", "/nonexistent/order.json"], "load: --body: cannot read /nonexistent/order.json: "],
    [[...BASE, "--rps", "5"], "load: Unknown option '--rps'"],
    [[...BASE, "extra"], "load: Unexpected argument 'extra'"],
  ];
  for (const [args, message] of cases) {
    await rejects(parseLoadArgs(args), (e: Error) => {
      assert(e instanceof CliError && e.exitCode === 2, `${e}`);
      assert(e.message.startsWith(message), `${e.message}\n  expected: ${message}`);
      return true;
    });
  }
});

Deno.test("load flags: --shape and --shape-file instead of --rate and --duration; their mistakes", async () => {
  const TARGET = ["--target", "GET /x"];
  const inline = await parseLoadArgs([...TARGET, "--shape", "10/s for 2s, ramp 10..30/s over 2s"]);
  assertEquals(
    [
      inline.load.ratePerSecond,
      inline.load.durationMs,
      inline.load.shape?.describe(),
      inline.load.shape?.planned,
    ],
    [undefined, undefined, "10/s for 2s, ramp 10..30/s over 2s", 60],
  );
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "shape.txt");
    await Deno.writeTextFile(file, "# warm up\n5/s for 1s\nspike 50/s for 1s # burst\n");
    const fromFile = await parseLoadArgs([...TARGET, "--shape-file", file]);
    assertEquals(fromFile.load.shape?.describe(), "5/s for 1s, spike 50/s for 1s");
    await Deno.writeTextFile(file, "5/s for 1s\nramp 5..50/s in 10s\n");
    const cases: Array<[string[], string]> = [
      [
        ["--shape", "10/s for 2s, ramp 10..30/s ovr 2s"],
        'load: --shape segment 2 "ramp 10..30/s ovr 2s", column 28: expected "over" but found "ovr"',
      ],
      [
        ["--shape-file", file],
        `load: --shape-file ${file} line 2, column 14 ("ramp 5..50/s in 10s"): expected "over" but found "in"`,
      ],
      [["--shape", "1/s for 1s", "--shape-file", file], "load: give --shape or --shape-file, not both"],
      [
        ["--shape", "1/s for 1s", "--rate", "5/s"],
        "load: --shape sets the rate and the duration: leave out --rate and --duration",
      ],
      [
        ["--shape-file", join(dir, "missing.txt")],
        `load: --shape-file: cannot read ${join(dir, "missing.txt")}`,
      ],
      [[], 'load: --rate is required (for example --rate 200/s), or give --shape "ramp 10..400/s over 60s"'],
    ];
    for (const [args, message] of cases) {
      await rejects(parseLoadArgs([...TARGET, ...args]), (e: Error) => {
        assert(e instanceof CliError && e.exitCode === 2, `${e}`);
        assert(e.message.startsWith(message), `${e.message}\n  expected: ${message}`);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// "--" as `deno task cli -- load ...` passes it.
const cli = (args: string[]) => runCli(["--", "load", ...args]);

Deno.test("aether load: a real run with --json, --min-success, and a template file", async () => {
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const { n } = await request.json();
    count++;
    return new Response("{}", { status: n % 10 === 0 ? 503 : 201 });
  });
  const dir = await Deno.makeTempDir();
  try {
    const body = join(dir, "order.json.tmpl");
    await Deno.writeTextFile(body, '{"n": ${seq:1}}');
    const url = `http://127.0.0.1:${server.addr.port}`;
    // 1.5 s at 50/s: 75 requests, of which n = 10, 20, ... 70 get a 503.
    // Below the default --min-success of 99%: the report is printed, and the exit code says it failed.
    const json = await cli([...BASE, "--duration", "1.5s", "--body", body, "--url", url, "--json"]);
    assertEquals(json.code, 1, json.stderr);
    assert(json.stderr.includes("is below --min-success 99%"), json.stderr);
    const report = JSON.parse(json.stdout);
    assertEquals([report.sent, report.succeeded, report.statuses], [75, 68, { "201": 68, "503": 7 }]);
    assertEquals(report.successRate, 68 / 75);
    assert(
      /\[\s*\d+s\] target\s+\d+\/s\s+sent/.test(json.stderr),
      `progress lines go to stderr with --json: ${json.stderr}`,
    );

    const text = await cli([...BASE, "--body", body, "--url", url, "--min-success", "95"]);
    assertEquals(text.code, 1, text.stderr);
    assert(text.stdout.includes("success     45/50 = 90.00%"), text.stdout);
    assert(text.stdout.includes("status      201: 45  503: 5"), text.stdout);
    assert(text.stderr.includes("error: the success rate 90.00% is below --min-success 95%"), text.stderr);
    assertEquals(count, 125);

    const usage = await cli([...BASE, "--rate", "x"]);
    assertEquals([usage.code, usage.stderr.trim()], [
      2,
      'error: load: --rate "x" is not a rate like 200/s, 6000/m or 200',
    ]);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load flags: without --url or $AETHER_APP_URL, the Forge cluster's application URLs", async () => {
  const forge = ["http://127.0.0.1:8071", "http://127.0.0.1:8072"];
  assertEquals((await parseLoadArgs(BASE, { forgeAppUrls: forge })).load.urls, forge);
  assertEquals((await parseLoadArgs(BASE, { appUrl: "127.0.0.1:9000", forgeAppUrls: forge })).load.urls, [
    "http://127.0.0.1:9000",
  ]);
  assertEquals((await parseLoadArgs(BASE, { forgeAppUrls: [] })).load.urls, [DEFAULT_APP_URL]);
});
