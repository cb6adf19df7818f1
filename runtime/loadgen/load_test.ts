/**
 * The load generator against real local HTTP servers (`Deno.serve` on port 0) that answer with controlled
 * latency and status codes.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { Rng } from "../core/mod.ts";
import {
  compileTemplate,
  type LoadOptions,
  type LoadProgress,
  parseDuration,
  parseRate,
  parseTarget,
  parseUrls,
  percentile,
  runLoad,
  startLoad,
} from "./mod.ts";

interface TestServer {
  url: string;
  /** Epoch milliseconds (fractional, the clock the generator uses) of every request's arrival. */
  arrivals: number[];
  bodies: string[];
  maxConcurrent: number;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server whose answer (after an optional delay) `respond` decides from the request body. */
function serve(respond: (body: string) => { delayMs?: number; status?: number } = () => ({})): TestServer {
  const state = { arrivals: [] as number[], bodies: [] as string[], concurrent: 0, maxConcurrent: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    state.arrivals.push(performance.timeOrigin + performance.now());
    state.concurrent++;
    state.maxConcurrent = Math.max(state.maxConcurrent, state.concurrent);
    try {
      const body = await request.text();
      state.bodies.push(body);
      const { delayMs = 0, status = 200 } = respond(body);
      if (delayMs > 0) await sleep(delayMs);
      return new Response(JSON.stringify({ ok: status < 400 }), { status });
    } finally {
      state.concurrent--;
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    arrivals: state.arrivals,
    bodies: state.bodies,
    get maxConcurrent() {
      return state.maxConcurrent;
    },
    close: () => server.shutdown(),
  };
}

/** A port nothing listens on: connections are refused. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const SEQ_BODY = '{"n": ${seq:0}}';
const numberIn = (body: string) => JSON.parse(body).n as number;

function load(server: TestServer, options: Partial<LoadOptions>): LoadOptions {
  return { target: "POST /orders", urls: [server.url], ratePerSecond: 100, durationMs: 1000, ...options };
}

Deno.test("load: sends at the requested rate, evenly, and counts every request", async () => {
  const server = serve();
  try {
    const report = await runLoad(load(server, { ratePerSecond: 200, durationMs: 2000, body: "{}" }));
    assertEquals(
      [report.planned, report.requests, report.sent, report.dropped, report.succeeded, report.successRate],
      [400, 400, 400, 0, 400, 1],
    );
    assertEquals(server.arrivals.length, 400);
    assertEquals(report.statuses, { "200": 400 });
    // Never early (request i leaves at start + i × 5 ms at the soonest), and not much later either.
    const t0 = report.startedAtMs;
    const lastMs = server.arrivals.at(-1)! - t0;
    assert(lastMs >= 1_995 && lastMs < 2_400, `the last of 400 requests at 200/s arrived after ${lastMs} ms`);
    // Evenly spread, not in bursts: every half second got about a quarter of them.
    for (let i = 0; i < 4; i++) {
      const end = i === 3 ? Infinity : (i + 1) * 500;
      const inWindow = server.arrivals.filter((t) => t - t0 >= i * 500 && t - t0 < end).length;
      assert(
        inWindow >= 70 && inWindow <= 130,
        `half-second ${i} got ${inWindow} requests, expected about 100`,
      );
    }
    assert(Math.abs(report.sendRatePerSecond - 200) < 20, `send rate ${report.sendRatePerSecond}/s`);
    assertEquals(report.perSecond.map((s) => [s.second, s.requests, s.succeeded]), [[0, 200, 200], [
      1,
      200,
      200,
    ]]);
    // The first fetch sets up Deno's HTTP client (some 20 ms), and the machine is shared: a few late sends are
    // normal, and each is counted; most requests must still leave on time.
    assert(report.late < 100, `${report.late} of 400 sends were late (max lag ${report.maxSendLagMs} ms)`);
  } finally {
    await server.close();
  }
});

Deno.test("load: open loop, slow answers do not slow the sending", async () => {
  const server = serve(() => ({ delayMs: 400 }));
  try {
    const report = await runLoad(load(server, { ratePerSecond: 100, durationMs: 1000, body: "{}" }));
    assertEquals([report.sent, report.succeeded, report.dropped], [100, 100, 0]);
    const sendSpanMs = server.arrivals.at(-1)! - server.arrivals[0];
    // A closed loop with one client would need 100 × 400 ms = 40 s; here everything leaves within the second.
    assert(sendSpanMs < 1_300, `the 100 requests took ${sendSpanMs} ms to leave`);
    assert(server.maxConcurrent >= 30, `only ${server.maxConcurrent} requests were in flight at once`);
    assert(report.latency.p50Ms >= 395 && report.latency.p50Ms < 1_500, `p50 ${report.latency.p50Ms} ms`);
    assert(report.elapsedMs >= 1_350 && report.elapsedMs < 3_000, `elapsed ${report.elapsedMs} ms`);
  } finally {
    await server.close();
  }
});

Deno.test("load: requests due beyond the concurrency limit are dropped and counted as failures", async () => {
  const server = serve(() => ({ delayMs: 500 }));
  try {
    const report = await runLoad(load(server, { concurrency: 10, body: "{}" }));
    assert(server.maxConcurrent <= 10, `${server.maxConcurrent} in flight with a limit of 10`);
    assertEquals([report.requests, report.sent + report.dropped], [100, 100]);
    assert(report.dropped >= 60, `only ${report.dropped} dropped`);
    assertEquals(report.statuses, { "200": report.sent, dropped: report.dropped });
    assertEquals([report.succeeded, report.failed, report.successRate], [
      report.sent,
      report.dropped,
      report.sent / 100,
    ]);
    assertEquals(report.perSecond[0].dropped, report.dropped);
    assertEquals(server.arrivals.length, report.sent);
  } finally {
    await server.close();
  }
});

Deno.test("load: statuses, timeouts and the success rate are counted exactly", async () => {
  // By the request's sequence number: 10 % hang past the timeout, 10 % get 500, 10 % 404, the rest 200.
  const server = serve((body) => {
    const n = numberIn(body) % 10;
    return n === 0 ? { delayMs: 1_000 } : n === 1 ? { status: 500 } : n === 2 ? { status: 404 } : {};
  });
  try {
    const report = await runLoad(load(server, { body: SEQ_BODY, timeoutMs: 300 }));
    assertEquals(report.statuses, { "200": 70, "404": 10, "500": 10, timeout: 10 });
    assertEquals([report.requests, report.succeeded, report.failed, report.successRate], [100, 70, 30, 0.7]);
    assertEquals(report.latency.count, 90, "timed-out requests are counted, not timed");
    assertEquals(report.errors, {});
  } finally {
    await server.close();
  }
});

Deno.test("load: a redirect is the answer (counted by its status), never followed", async () => {
  // A URL shortener's resolve answers 302 to a page elsewhere: the load measures the shortener, not that page.
  const elsewhere = `http://127.0.0.1:${closedPort()}/page`;
  let redirects = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    redirects++;
    return new Response(null, { status: 302, headers: { location: elsewhere } });
  });
  try {
    const report = await runLoad({
      target: "GET /u/r/abc",
      urls: [`http://127.0.0.1:${server.addr.port}`],
      ratePerSecond: 50,
      durationMs: 400,
      timeoutMs: 2_000,
    });
    assertEquals(report.statuses, { "302": 20 });
    assertEquals([report.requests, report.succeeded, report.successRate], [20, 20, 1]);
    assertEquals(report.errors, {}, "the redirect's location was not fetched");
    assertEquals(redirects, 20);
  } finally {
    await server.shutdown();
  }
});

Deno.test("load: requests spread round-robin over the URLs; a dead one shows as connection errors", async () => {
  const a = serve();
  const b = serve();
  const dead = `http://127.0.0.1:${closedPort()}`;
  try {
    const report = await runLoad({
      target: "POST /orders",
      urls: [a.url, `${b.url}/`, dead],
      ratePerSecond: 90,
      durationMs: 1000,
      body: "{}",
    });
    assertEquals([a.arrivals.length, b.arrivals.length], [30, 30]);
    assertEquals(report.perUrl, [
      { url: a.url, requests: 30, succeeded: 30, failed: 0, refused: 0 },
      { url: b.url, requests: 30, succeeded: 30, failed: 0, refused: 0 },
      { url: dead, requests: 30, succeeded: 0, failed: 30, refused: 30 },
    ]);
    assertEquals(report.statuses, { "200": 60, error: 30 });
    assertEquals(report.errors, { "Connection refused": 30 });
    assertEquals([report.successRate, report.failovers], [60 / 90, 0]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("load: with failover, a refused connection goes on to the next URL, like a load balancer", async () => {
  const a = serve();
  const b = serve();
  const dead = `http://127.0.0.1:${closedPort()}`;
  try {
    const report = await runLoad({
      target: "POST /orders",
      urls: [a.url, dead, b.url],
      ratePerSecond: 90,
      durationMs: 1000,
      body: "{}",
      failover: true,
      recordOutcomes: true,
    });
    // The dead URL's turns went to b, the next one.
    assertEquals([a.arrivals.length, b.arrivals.length], [30, 60]);
    assertEquals([report.successRate, report.failovers, report.statuses], [1, 30, { "200": 90 }]);
    assertEquals(report.perUrl, [
      { url: a.url, requests: 30, succeeded: 30, failed: 0, refused: 0 },
      { url: dead, requests: 0, succeeded: 0, failed: 0, refused: 30 },
      { url: b.url, requests: 60, succeeded: 60, failed: 0, refused: 0 },
    ]);
    const moved = report.outcomes!.filter((o) => o.attempts === 2);
    assertEquals(moved.length, 30);
    assert(moved.every((o) => o.index % 3 === 1 && o.url === b.url));
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  // When every URL refuses, the request fails after trying each once.
  const report = await runLoad({
    target: "POST /orders",
    urls: [dead, `http://127.0.0.1:${closedPort()}`],
    ratePerSecond: 20,
    durationMs: 500,
    body: "{}",
    failover: true,
    recordOutcomes: true,
  });
  assertEquals([report.statuses, report.failovers], [{ error: 10 }, 10]);
  assert(report.outcomes!.every((o) => o.attempts === 2 && o.error === "Connection refused"));
});

Deno.test("load: latency percentiles reflect the slow tenth", async () => {
  assertEquals([percentile([], 50), percentile([5], 99)], [0, 5]);
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assertEquals([50, 90, 99, 100].map((p) => percentile(hundred, p)), [50, 90, 99, 100]);
  assertEquals(percentile([1, 2, 3, 4], 50), 2, "nearest rank: a sample that was measured");

  // Every tenth request waits 300 ms: p90 is still a fast one, p99 and max are slow ones.
  const server = serve((body) => ({ delayMs: numberIn(body) % 10 === 9 ? 300 : 0 }));
  try {
    const { latency } = await runLoad(load(server, { body: SEQ_BODY }));
    assertEquals(latency.count, 100);
    assert(
      latency.p50Ms < 100 && latency.p90Ms < 290,
      `p50 ${latency.p50Ms} p90 ${latency.p90Ms}: 90 % are fast`,
    );
    assert(latency.p99Ms >= 298 && latency.maxMs >= 298 && latency.maxMs < 2_000, JSON.stringify(latency));
    assert(latency.minMs <= latency.meanMs && latency.meanMs <= latency.maxMs, JSON.stringify(latency));
  } finally {
    await server.close();
  }
});

Deno.test("load: templates make every body different; the path can vary too", async () => {
  const server = serve();
  try {
    const template = '{"id": "${uuid}", "sku": "${random:SKU-#####}", "qty": ${range:1-5}, ' +
      '"tier": "${choice:gold,silver,bronze}", "n": ${seq:1}, "raw": "$${kept}"}';
    const report = await runLoad({
      target: "PUT /items/${choice:a,b}",
      urls: [server.url],
      ratePerSecond: 200,
      durationMs: 500,
      body: template,
      seed: 7,
    });
    assertEquals(report.sent, 100);
    const bodies = server.bodies.map((b) => JSON.parse(b));
    assertEquals(new Set(bodies.map((b) => b.id)).size, 100, "every uuid differs");
    assert(
      bodies.every((b) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(b.id)),
    );
    assert(bodies.every((b) => /^SKU-\d{5}$/.test(b.sku)));
    assertEquals([...new Set(bodies.map((b) => b.qty))].sort(), [1, 2, 3, 4, 5]);
    assertEquals([...new Set(bodies.map((b) => b.tier))].sort(), ["bronze", "gold", "silver"]);
    assertEquals(bodies.map((b) => b.n).sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i + 1));
    assert(bodies.every((b) => b.raw === "${kept}"));
    assertEquals(report.target, "PUT /items/${choice:a,b}");
  } finally {
    await server.close();
  }
});

Deno.test("templates: each pattern, seeded, and every mistake located", () => {
  const expand = (text: string, times = 1, seed = 1) => {
    const t = compileTemplate(text);
    const rng = new Rng(seed);
    return Array.from({ length: times }, () => t.expand(rng));
  };
  assertEquals(expand("${seq:5}-${seq}", 3), ["5-1", "6-2", "7-3"]);
  assertEquals(expand("${seq:-1}", 2), ["-1", "0"]);
  assertEquals(expand("a $${b} $c {d}"), ["a ${b} $c {d}"]);
  assertEquals(compileTemplate("plain").isStatic, true);
  assertEquals(
    expand("${uuid} ${random:??-#} ${range:3-3}", 1, 9),
    expand("${uuid} ${random:??-#} ${range:3-3}", 1, 9),
  );
  assert(/^[A-Z]{2}-\d 3$/.test(expand("${random:??-#} ${range:3-3}")[0]));
  const ranged = new Set(expand("${range:-2--1}", 50).map(Number));
  assertEquals([...ranged].sort((x, y) => x - y), [-2, -1]);
  assertEquals(new Set(expand("${choice:x}", 5)), new Set(["x"]));

  const cases: Array<[string, string]> = [
    [
      '{\n  "a": ${nope}\n}',
      "body.json: unknown pattern ${nope} (known: uuid, random, range, choice, seq) at line 2, column 8",
    ],
    ["x ${uuid", 'body.json: "${" has no closing "}" at line 1, column 3'],
    ["${uuid:4}", "body.json: ${uuid} takes no argument at line 1, column 1"],
    [
      "${random:SKU}",
      'body.json: ${random:SHAPE} needs a shape with # (digit) or ? (letter), e.g. "SKU-#####" at line 1, column 1',
    ],
    ["${range:5}", "body.json: ${range:MIN-MAX} needs two integers, e.g. ${range:1-5} at line 1, column 1"],
    ["${range:5-1}", "body.json: ${range:5-1} has MIN greater than MAX at line 1, column 1"],
    [
      "${choice:a,,b}",
      "body.json: ${choice:a,b,c} needs comma-separated options, none of them empty at line 1, column 1",
    ],
    ["${seq:x}", "body.json: ${seq:START} needs an integer start, e.g. ${seq:1} at line 1, column 1"],
  ];
  for (const [text, message] of cases) throws(() => compileTemplate(text, "body.json"), { message });
});

Deno.test("load: per-request outcomes with timestamps, per-second figures and live progress", async () => {
  const server = serve();
  const progress: LoadProgress[] = [];
  try {
    const report = await runLoad(load(server, {
      durationMs: 2_200,
      body: "{}",
      recordOutcomes: true,
      progressIntervalMs: 500,
      onProgress: (p) => progress.push(p),
    }));
    const outcomes = report.outcomes!;
    assertEquals(outcomes.length, 220);
    assertEquals(outcomes.map((o) => o.index), Array.from({ length: 220 }, (_, i) => i));
    const t0 = outcomes[0].scheduledAt;
    for (const o of outcomes) {
      assert(
        Math.abs(o.scheduledAt - (t0 + o.index * 10)) < 0.001,
        `request ${o.index} due at the wrong time`,
      );
      assert(o.sentAt! >= o.scheduledAt && o.endedAt >= o.sentAt!, JSON.stringify(o));
      assertEquals([o.kind, o.status, o.url, o.attempts], ["ok", 200, server.url, 1]);
      assertEquals(o.latencyMs, o.endedAt - o.sentAt!);
    }
    assertEquals(report.perSecond.map((s) => s.requests), [100, 100, 20]);
    assert(progress.length >= 4, `${progress.length} progress reports in 2.2 s at one per 500 ms`);
    const last = progress.at(-1)!;
    assert(last.sent > 150 && last.succeeded <= last.sent && last.failed === 0, JSON.stringify(last));
    const windowed = progress.reduce((sum, p) => sum + p.window.completed, 0);
    assert(windowed <= 220 && windowed >= 150, `progress windows saw ${windowed} answers`);
  } finally {
    await server.close();
  }
});

Deno.test("load: stop() and an aborted signal end the run early, in-flight requests still counted", async () => {
  const server = serve(() => ({ delayMs: 100 }));
  try {
    const controller = new AbortController();
    const started = performance.now();
    const run = startLoad(load(server, { durationMs: 10_000, body: "{}", signal: controller.signal }));
    await sleep(300);
    controller.abort();
    const report = await run.finished;
    const tookMs = performance.now() - started;
    assert(tookMs < 1_500, `stopping took until ${tookMs} ms`);
    assertEquals([report.stoppedEarly, report.planned], [true, 1000]);
    assert(report.requests >= 15 && report.requests <= 60, `${report.requests} requests in 300 ms at 100/s`);
    assertEquals([report.succeeded, report.requests], [server.arrivals.length, server.arrivals.length]);
    run.stop(); // harmless after the end
  } finally {
    await server.close();
  }
});

Deno.test("load: options are checked before anything is sent", () => {
  const base: LoadOptions = {
    target: "POST /x",
    urls: ["http://127.0.0.1:1"],
    ratePerSecond: 10,
    durationMs: 1000,
  };
  const cases: Array<[Partial<LoadOptions>, string]> = [
    [
      { target: "FETCH /x" },
      'target "FETCH /x" is not "METHOD /path" with METHOD one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS',
    ],
    [{ target: "POST x" }, 'target "POST x": the path must start with "/"'],
    [{ urls: [] }, "url needs one or more base URLs separated by commas, none of them empty"],
    [{ urls: ["ftp://host"] }, 'url "ftp://host" must be http:// or https://'],
    [{ ratePerSecond: 0 }, "ratePerSecond must be above 0 and at most 100000"],
    [{ durationMs: -1 }, "durationMs must be above 0 and at most 86400000"],
    [{ ratePerSecond: 0.5, durationMs: 500 }, "a rate of 0.5/s for 500 ms gives no request at all"],
    [{ concurrency: 0 }, "concurrency must be an integer from 1 to 100000, got 0"],
    [{ timeoutMs: 0 }, "timeoutMs must be above 0 and at most 600000, got 0"],
    [{ target: "GET /x", body: "{}" }, "a GET request cannot have a body"],
    [{ body: "{,}", bodyLabel: "order.json" }, "order.json does not expand to JSON ("],
    [{ body: "${oops}", bodyLabel: "order.json" }, "order.json: unknown pattern ${oops}"],
  ];
  for (const [options, message] of cases) {
    throws(() => startLoad({ ...base, ...options }), (e: Error) => {
      assert(e.message.startsWith(message), `${e.message}\n  expected: ${message}`);
      return true;
    });
  }
  // A non-JSON content type skips the JSON check.
  const run = startLoad({ ...base, body: "a=1", headers: { "Content-Type": "text/plain" }, durationMs: 100 });
  run.stop();
});

Deno.test("load: rate, duration, target and URL flags", () => {
  assertEquals([parseRate("200/s"), parseRate("200"), parseRate("6000/m"), parseRate(" 0.5 / s ")], [
    200,
    200,
    100,
    0.5,
  ]);
  assertEquals([
    parseDuration("30s"),
    parseDuration("500ms"),
    parseDuration("5m"),
    parseDuration("1h"),
    parseDuration("2"),
  ], [
    30_000,
    500,
    300_000,
    3_600_000,
    2_000,
  ]);
  assertEquals(parseTarget("post /api/v1/orders"), { method: "POST", path: "/api/v1/orders" });
  assertEquals(parseUrls("127.0.0.1:8071, http://127.0.0.1:8072/, https://shop.example/base/"), [
    "http://127.0.0.1:8071",
    "http://127.0.0.1:8072",
    "https://shop.example/base",
  ]);
  throws(() => parseRate("fast", "--rate"), {
    message: '--rate "fast" is not a rate like 200/s, 6000/m or 200',
  });
  throws(() => parseRate("0/s", "--rate"), { message: '--rate "0/s" must be above 0 and at most 100000/s' });
  throws(() => parseDuration("10 years", "--duration"), {
    message: '--duration "10 years" is not a duration like 30s, 500ms, 5m or 1h',
  });
  throws(() => parseDuration("25h", "--duration"), {
    message: '--duration "25h" must be above 0 and at most 24h',
  });
  throws(() => parseUrls("http://a:1,,http://b:2", "--url"), {
    message: "--url needs one or more base URLs separated by commas, none of them empty",
  });
  throws(() => parseUrls("http://h:1/?q=1", "--url"), {
    message: '--url "http://h:1/?q=1" must be a base URL without query, fragment or credentials',
  });
});
