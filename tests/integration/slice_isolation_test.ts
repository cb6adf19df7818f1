/**
 * A hostile slice on a real node, in each isolation (`--sandbox process|worker`), next to a healthy neighbour
 * that is pinged throughout (tests/fixtures/isolation). The attacker tries to share state through the
 * platform (localStorage, the Cache API, BroadcastChannel, also through node:worker_threads), to write forged
 * ready and log lines on the node's stdout and stderr, to forge the node's log through its own log lines
 * (a newline, ANSI escapes, the runtime's field names), and to flood it. Each is denied or contained: the
 * neighbour sees nothing, the node's stdout holds only its ready line, every line of its log is its own, the
 * flood is cut at the instance's limit, counted in the status and reported, and the neighbour never fails.
 *
 * The node is started here rather than through tests/_support/cluster.ts: the test reads the node's standard
 * output after the ready line, which NodeProcess discards.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { buildSlice, type BuiltSlice } from "../../runtime/authoring/mod.ts";
import { freePort } from "../../runtime/forge/mod.ts";
import { nodeCommandArgs } from "../../runtime/node/mod.ts";
import { testAdminToken } from "../_support/cluster.ts";

const ATTACKER = "org.example.isolation:attacker:1.0.0";
const NEIGHBOUR = "org.example.isolation:neighbour:1.0.0";

interface Node {
  apiUrl: string;
  httpUrl: string;
  stdout(): string;
  stderr(): string;
  api(path: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

async function collect(stream: ReadableStream<Uint8Array>, into: { text: string }): Promise<void> {
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) into.text += chunk;
  } catch {
    // The stream ends with the process.
  }
}

async function startNode(root: string, mode: "process" | "worker"): Promise<Node> {
  const secretFile = `${root}/secret`;
  const tokenFile = `${root}/admin-token`;
  const token = testAdminToken();
  await Deno.writeTextFile(secretFile, `test-secret-${crypto.randomUUID()}`);
  await Deno.writeTextFile(tokenFile, token);
  const dataDir = `${root}/n1`;
  const child = new Deno.Command(Deno.execPath(), {
    args: nodeCommandArgs({
      dataDir,
      secretFile,
      nodeArgs: [
        ...["--id", "n1", "--peers", `n1@127.0.0.1:${freePort()}`, "--data-dir", dataDir],
        ...["--secret-file", secretFile, "--api-port", "0", "--http-port", "0"],
        ...["--bootstrap-token-file", tokenFile, "--fsync", "never", "--sandbox", mode],
        // Worker isolation is for trusted slices: trust this one, to test the Worker's own containment.
        ...(mode === "worker" ? ["--trust-all-slices"] : []),
      ],
    }),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
  }).spawn();
  const out = { text: "" };
  const err = { text: "" };
  const reading = Promise.all([collect(child.stdout, out), collect(child.stderr, err)]);
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
    await child.stdin.close().catch(() => {});
    await reading;
  };
  const until = Date.now() + 60_000;
  while (!out.text.includes('"event":"ready"')) {
    if (Date.now() > until) {
      await stop();
      throw new Error(`the node was not ready within 60 s:\n${err.text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const ready = JSON.parse(out.text.split("\n").find((l) => l.includes('"event":"ready"'))!);
  const apiUrl = `http://127.0.0.1:${ready.apiPort}`;
  return {
    apiUrl,
    httpUrl: `http://127.0.0.1:${ready.httpPort}`,
    stdout: () => out.text,
    stderr: () => err.text,
    api: (path, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set("authorization", `Bearer ${token}`);
      return fetch(apiUrl + path, { ...init, headers });
    },
    stop,
  };
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const result = await check();
      if (result) return result;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

async function deploy(node: Node, slice: BuiltSlice): Promise<void> {
  const form = new FormData();
  form.append("manifest", JSON.stringify(slice.manifest));
  form.append("bundle", new Blob([slice.bundle as Uint8Array<ArrayBuffer>]), "bundle.js");
  const pushed = await node.api("/api/v1/artifacts", { method: "POST", body: form });
  assert(pushed.status === 201 || pushed.status === 200, await pushed.text());
  const deployed = await node.api("/api/v1/deploy", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ artifact: slice.manifest.coordinates, instances: 1 }),
  });
  assert(deployed.status === 201 || deployed.status === 200, await deployed.text());
}

async function post(node: Node, path: string, body: unknown = {}, requestId?: string) {
  const response = await fetch(`${node.httpUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(requestId ? { "x-request-id": requestId } : {}) },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Pings the neighbour every 50 ms until stopped; resolves with the failures seen. */
function pingThroughout(node: Node) {
  let running = true;
  let pings = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      const answer = await post(node, "/neighbour/ping").catch((e) => ({ status: 0, body: String(e) }));
      if (answer.status !== 200) failures.push(`${answer.status} ${JSON.stringify(answer.body)}`);
      pings++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return async () => {
    running = false;
    await loop;
    return { pings, failures };
  };
}

const fixture = (name: string) =>
  buildSlice(new URL(`../fixtures/isolation/${name}.ts`, import.meta.url).pathname);

for (const mode of ["process", "worker"] as const) {
  Deno.test(`[${mode}] slice isolation on a node: storage, stdio and log attacks are contained`, async (t) => {
    const root = await Deno.makeTempDir({ prefix: "aether-isolation-" });
    const node = await startNode(root, mode);
    let stopPings: ReturnType<typeof pingThroughout> | undefined;
    try {
      await waitFor("a healthy node", async () => (await node.api("/api/v1/health")).status === 200);
      await deploy(node, await fixture("attacker"));
      await deploy(node, await fixture("neighbour"));
      await waitFor("both slices routed", async () => {
        const { routes } = await (await node.api("/api/v1/routes")).json() as { routes: { path: string }[] };
        return routes.some((r) => r.path === "/attacker/share") &&
          routes.some((r) => r.path === "/neighbour/ping");
      });
      await waitFor(
        "the neighbour answering",
        async () => (await post(node, "/neighbour/ping")).status === 200,
      );
      await waitFor(
        "the attacker answering",
        async () => (await post(node, "/attacker/forge")).status === 200,
      );
      stopPings = pingThroughout(node);

      await t.step("storage and channels: every attempt denied, the neighbour sees nothing", async () => {
        const shared = await post(node, "/attacker/share", { value: "secret-of-the-attacker" });
        assertEquals(shared.status, 200, JSON.stringify(shared.body));
        for (const [api, result] of Object.entries(shared.body as Record<string, string>)) {
          assert(result.startsWith("denied"), `${api}: ${result}`);
        }
        const peeked = await post(node, "/neighbour/peek");
        assertEquals(peeked.status, 200);
        assertEquals(peeked.body.heard, []);
        assert(!JSON.stringify(peeked.body).includes("secret-of-the-attacker"), JSON.stringify(peeked.body));
      });

      await t.step("stdout and stderr: nothing of the slice's reaches the node's", async () => {
        // process.stdout of a process sandbox is its protocol pipe: tried last, below.
        const stdio = await post(
          node,
          "/attacker/stdio",
          { processStdout: mode === "worker" },
          "iso-stdio-1",
        );
        assertEquals(stdio.status, 200, JSON.stringify(stdio.body));
        // Deno.stdout and Deno.stderr writes became the slice's log lines.
        await waitFor("the stdio writes as log lines", () =>
          Promise.resolve(
            node.stderr().split("\n").some((l) =>
              l.includes("FORGED Deno.stdout") && l.includes(`slice=${ATTACKER}`) &&
              l.includes("component=slice")
            ),
          ), 10_000);
        if (mode === "worker") {
          assert(stdio.body.processStdout.startsWith("denied"), stdio.body.processStdout);
        }
      });

      await t.step("a forged log line stays one line of the slice, with the runtime's fields", async () => {
        assertEquals((await post(node, "/attacker/forge", {}, "iso-forge-1")).status, 200);
        const line = await waitFor(
          "the forge line",
          () => Promise.resolve(node.stderr().split("\n").find((l) => l.includes("requestId=iso-forge-1"))),
          10_000,
        );
        assert(line.includes("attacker says hi\\n2026-01-01T00:00:00.000Z ERROR [n1] FORGED"), line);
        assert(line.includes("\\x1b[31mred"), line);
        assert(line.includes(`component=slice slice=${ATTACKER} instance=`), line);
        assert(!line.includes("forged-instance") && !line.includes("component=raft"), line);
        assert(!line.includes("forged-request") && !line.includes(`slice=${NEIGHBOUR}`), line);
      });

      await t.step("a flood of 20,000 lines is cut at the limit, counted and reported", async () => {
        const started = Date.now();
        const flood = await post(node, "/attacker/flood", { lines: 20_000 }, "iso-flood-1");
        assertEquals(flood.status, 200, JSON.stringify(flood.body));
        const report = await waitFor("the dropped-lines report", () =>
          Promise.resolve(
            node.stderr().split("\n").find((l) => l.includes("log lines of the slice dropped")),
          ), 15_000);
        assert(report.includes(`slice=${ATTACKER}`) && report.includes("WARN"), report);
        const kept = node.stderr().split("\n").filter((l) => l.includes("flood line ")).length;
        const elapsedS = (Date.now() - started) / 1000;
        assert(kept >= 2_000 && kept <= 2_000 + Math.ceil(1_000 * elapsedS), `${kept} lines kept`);
        const status = await (await node.api("/api/v1/status")).text();
        const dropped = [...status.matchAll(/"droppedLogLines":(\d+)/g)].map((m) => Number(m[1]));
        assert(dropped.some((n) => n >= 20_000 - kept), `droppedLogLines ${dropped} (kept ${kept})`);
      });

      await t.step(
        "the node's stdout holds its ready line only; its log has no raw control characters",
        () => {
          const stdoutLines = node.stdout().split("\n").filter((l) => l !== "");
          assertEquals(stdoutLines.length, 1, node.stdout());
          assert(stdoutLines[0].includes('"nodeId":"n1"'), stdoutLines[0]);
          const log = node.stderr();
          assert(
            // deno-lint-ignore no-control-regex
            !/[\u0000-\u0009\u000b-\u001f\u007f]/.test(log),
            "a raw control character in the node's log",
          );
          for (const line of log.split("\n").filter((l) => l.includes("FORGED"))) {
            assert(!line.startsWith("2026-01-01T00:00:00.000Z"), `a forged line: ${line}`);
            assert(
              line.includes(`slice=${ATTACKER}`),
              `a line of the slice without its coordinates: ${line}`,
            );
          }
        },
      );

      if (mode === "process") {
        await t.step(
          "a raw write to a process sandbox's protocol pipe fails that instance only",
          async () => {
            const broken = await post(node, "/attacker/stdio", { processStdout: true }, "iso-stdio-2");
            // The instance failed (a protocol error); the caller gets a 5xx, the node's stdout nothing.
            assert(broken.status >= 500, JSON.stringify(broken.body));
            await waitFor(
              "the protocol failure in the log",
              () => Promise.resolve(node.stderr().includes("not a protocol message")),
              10_000,
            );
            assert(!node.stdout().includes("FORGED"), node.stdout());
          },
        );
      }

      const { pings, failures } = await stopPings();
      stopPings = undefined;
      assertEquals(failures, []);
      assert(pings > 5, `${pings} pings`);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n----- node log -----\n${node.stderr().slice(-4000)}`);
    } finally {
      await stopPings?.();
      await node.stop();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  });
}
