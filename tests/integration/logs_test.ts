/**
 * Logs on real node processes (3 members on loopback, started with --log-format json, a fixture slice from
 * tests/fixtures/logs deployed through the API): every line a node writes on standard error is one JSON
 * object; a slice's `ctx.log` line of a request served through one node is read back through another node's
 * GET /api/v1/logs with its slice, instance and request id; `follow=true` streams a record written after it
 * started; bad query parameters get a 400 naming the parameter; `aether logs` prints the same records.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { runCli } from "../_support/cli.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

const SLICE = "org.example.logs:echo";
const COORDINATES = `${SLICE}:1.0.0`;

interface RecordView {
  time: string;
  level: string;
  node: string;
  msg: string;
  fields: Record<string, unknown>;
}

async function say(node: NodeProcess, word: string, requestId: string) {
  const response = await fetch(`${node.httpUrl}/echo/say`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": requestId },
    body: JSON.stringify({ word }),
  });
  const body = await response.json();
  equal(response.status, 200, JSON.stringify(body));
  return body as { word: string; instance: string; requestId: string };
}

async function logs(node: NodeProcess, query: string) {
  const response = await node.api(`/api/v1/logs${query}`);
  return { status: response.status, type: response.headers.get("content-type"), body: await response.json() };
}

/** Reads Server-Sent Events from a response body and calls `onEvent` for each until it returns true. */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: string, data: string) => boolean,
): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the stream ended");
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join(
          "\n",
        );
        if (data && onEvent(event, data)) return;
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

Deno.test("logs on 3 nodes: JSON lines, a slice's request line through any node's API, follow, 400s, CLI", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never", extraArgs: ["--log-format", "json"] });
  try {
    await cluster.waitForLeader();
    const [n1] = cluster.nodes;
    await pushArtifact(n1, await buildSlice(new URL("../fixtures/logs/echo.ts", import.meta.url).pathname));
    const deployed = await n1.json("/api/v1/deploy", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ artifact: COORDINATES, instances: 1 }),
    });
    ok(deployed.status === 201 || deployed.status === 200, JSON.stringify(deployed.body));
    const instanceNode = await cluster.waitFor("the echo slice ACTIVE", async () => {
      const slice = (await sliceStatuses(n1)).find((s) => s.slice === SLICE);
      const instance = slice?.instances.find((i) => i.state === "ACTIVE" && i.connected);
      return instance?.node;
    }, 90_000);
    for (const node of cluster.nodes) {
      await cluster.waitFor(`${node.id} routes POST /echo/say`, async () => {
        const { body } = await node.json<{ routes: Array<{ httpMethod: string; path: string }> }>(
          "/api/v1/routes",
        );
        return body.routes.some((r) => r.httpMethod === "POST" && r.path === "/echo/say");
      }, 30_000);
    }
    // The request enters through one node; the logs are read through a node that does not run the instance.
    const entry = cluster.nodes.find((n) => n.id !== instanceNode)!;
    const reader = cluster.nodes.find((n) => n.id !== instanceNode && n !== entry)!;

    await t.step(
      "a slice's ctx.log line carries slice, instance and request id, read through another node",
      async () => {
        const answer = await say(entry, "hello", "logs-it-0001");
        equal(answer.requestId, "logs-it-0001");
        const record = await cluster.waitFor("the echo line in GET /api/v1/logs", async () => {
          const { status, body } = await logs(reader, "?requestId=logs-it-0001");
          equal(status, 200, JSON.stringify(body));
          return (body.records as RecordView[]).find((r) => r.msg === "echo said");
        }, 15_000);
        equal(record.node, instanceNode);
        equal(record.level, "info");
        deepStrictEqual(record.fields, {
          component: "slice",
          word: "hello",
          slice: COORDINATES,
          instance: answer.instance,
          requestId: "logs-it-0001",
        });
        ok(!Number.isNaN(Date.parse(record.time)));
        // Filters: the slice without a version, the instance's node; another node has none of it.
        const bySlice = await logs(reader, `?slice=${SLICE}&requestId=logs-it-0001&level=info`);
        ok(bySlice.body.records.some((r: RecordView) => r.msg === "echo said"));
        const byNode = await logs(reader, `?node=${instanceNode}&requestId=logs-it-0001`);
        ok(
          byNode.body.records.length > 0 &&
            byNode.body.records.every((r: RecordView) => r.node === instanceNode),
        );
        const elsewhere = await logs(reader, `?node=${entry.id}&requestId=logs-it-0001&level=info`);
        deepStrictEqual(elsewhere.body.records, []);
        deepStrictEqual((await logs(reader, `?requestId=logs-it-0001&level=warn`)).body.records, []);
      },
    );

    await t.step("every node's lines, merged by time, include each member's lifecycle records", async () => {
      const { body } = await logs(reader, "?limit=10000");
      const records = body.records as RecordView[];
      deepStrictEqual(body.unreachable, {});
      deepStrictEqual(new Set(records.map((r) => r.node)), new Set(cluster.nodes.map((n) => n.id)));
      const times = records.map((r) => Date.parse(r.time));
      deepStrictEqual(times, [...times].sort((a, b) => a - b));
      const status = await reader.json<{ limits: { logRing: { records: number; maxRecords: number } } }>(
        "/api/v1/status",
      );
      equal(status.body.limits.logRing.maxRecords, 10_000, "the ring's limit is in the status");
      ok(status.body.limits.logRing.records > 0);
      const limited = await logs(reader, "?limit=3");
      equal(limited.body.records.length, 3);
      // The newest three: the cluster may have written more since the first query, never fewer.
      const newestBefore = Date.parse(records.at(-3)!.time);
      ok(
        (limited.body.records as RecordView[]).every((r) => Date.parse(r.time) >= newestBefore),
        JSON.stringify({ limited: limited.body.records, before: records.slice(-3) }),
      );
    });

    await t.step("follow=true streams a record written after it started", async () => {
      const controller = new AbortController();
      const response = await reader.api(`/api/v1/logs?follow=true&slice=${SLICE}&limit=1`, {
        signal: controller.signal,
      });
      equal(response.status, 200);
      match(response.headers.get("content-type") ?? "", /text\/event-stream/);
      // The request id is new: a record carrying it was written after the stream started.
      const seen = readEvents(response.body!, (event, data) => {
        if (event !== "record") return false;
        const record = JSON.parse(data) as RecordView;
        return record.fields.requestId === "logs-it-follow";
      });
      await new Promise((r) => setTimeout(r, 300));
      await say(entry, "later", "logs-it-follow");
      const timeout = new Promise((_, reject) =>
        setTimeout(() => reject(new Error("no followed record within 15 s")), 15_000)
      );
      try {
        await Promise.race([seen, timeout]);
      } finally {
        controller.abort();
      }
    });

    await t.step("bad query parameters: 400 problem+json naming the parameter", async () => {
      const cases: Array<[string, string]> = [
        ["?level=loud", "level"],
        ["?limit=0", "limit"],
        ["?limit=10001", "limit"],
        ["?limit=ten", "limit"],
        ["?since=yesterday", "since"],
        ["?node=n9", "node"],
        ["?slice=not%20a%20slice", "slice"],
        ["?follow=maybe", "follow"],
        ["?requestid=x", "requestid"],
      ];
      for (const [query, parameter] of cases) {
        const { status, type, body } = await logs(reader, query);
        equal(status, 400, `${query}: ${JSON.stringify(body)}`);
        equal(type, "application/problem+json", query);
        equal(body.parameter, parameter, query);
        match(body.detail, new RegExp(`query parameter ${parameter}:`), query);
      }
      const fine = await logs(reader, "?since=5m&level=debug&limit=5");
      equal(fine.status, 200);
      const iso = await logs(reader, `?since=${new Date(Date.now() - 60_000).toISOString()}&limit=5`);
      equal(iso.status, 200, JSON.stringify(iso.body));
    });

    await t.step("aether logs prints the records (text and --json) and names a bad flag value", async () => {
      const connect = ["--connect", `127.0.0.1:${reader.ready!.apiPort}`, "--token", reader.options.token!];
      const json = await runCli([
        ...connect,
        "logs",
        "--request-id",
        "logs-it-0001",
        "--level",
        "info",
        "--json",
      ]);
      equal(json.code, 0, json.stderr);
      const lines = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as RecordView);
      ok(lines.some((r) => r.msg === "echo said" && r.fields.slice === COORDINATES), json.stdout);
      const text = await runCli([...connect, "logs", "--slice", SLICE, "--since", "10m", "--limit", "50"]);
      equal(text.code, 0, text.stderr);
      match(text.stdout, new RegExp(`INFO  \\[${instanceNode}\\] echo said .*requestId=logs-it-0001`));
      const bad = await runCli([...connect, "logs", "--level", "loud"]);
      equal(bad.code, 1, bad.stdout);
      match(bad.stderr, /query parameter level: "loud"/);
    });

    await t.step("aether logs --follow prints a record written after it started", async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-net",
          "--allow-read",
          "--allow-env",
          new URL("../../runtime/main.ts", import.meta.url).pathname,
          ...[
            "--connect",
            `127.0.0.1:${reader.ready!.apiPort}`,
            "--token",
            reader.options.token!,
            "logs",
            "--follow",
            "--slice",
            SLICE,
            "--json",
          ],
        ],
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
      try {
        const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        const deadline = Date.now() + 30_000;
        const sender = (async () => {
          // The CLI process needs a moment to start and connect (its first records are the backlog).
          await new Promise((r) => setTimeout(r, 3_000));
          await say(entry, "cli", "logs-it-cli-follow");
        })();
        let found = false;
        while (!found && Date.now() < deadline) {
          const { value, done } = await lines.read();
          if (done) break;
          buffer += value;
          found = buffer.includes(`"requestId":"logs-it-cli-follow"`);
        }
        await sender;
        ok(found, buffer);
        await lines.cancel();
      } finally {
        child.kill("SIGTERM");
        await child.status;
        await child.stderr.cancel().catch(() => {});
      }
    });

    await t.step(
      "a member that is down is named unreachable; the others' records are still served",
      async () => {
        const down = cluster.nodes.find((n) => n !== reader)!;
        await down.stop("SIGKILL");
        const { status, body } = await logs(reader, "?limit=50");
        equal(status, 200);
        match(
          body.unreachable[down.id] ?? "",
          new RegExp(`${down.id} (is not connected|went down|did not answer)`),
        );
        ok(body.records.length > 0 && body.records.every((r: RecordView) => r.node !== down.id));
      },
    );

    await t.step("--log-format json: every line each node wrote on standard error is one JSON object", () => {
      for (const node of cluster.nodes) {
        const lines = node.log.split("\n").filter((l) => l.trim() !== "");
        ok(lines.length > 5, `${node.id} wrote ${lines.length} lines`);
        for (const line of lines) {
          let parsed;
          try {
            parsed = JSON.parse(line);
          } catch {
            throw new Error(`${node.id} wrote a line that is not JSON: ${line}`);
          }
          equal(parsed.node, node.id, line);
          ok(["debug", "info", "warn", "error"].includes(parsed.level), line);
          equal(typeof parsed.msg, "string", line);
          ok(!Number.isNaN(Date.parse(parsed.time)), line);
        }
      }
    });
  } catch (e) {
    throw new Error(`${(e as Error).stack}\n${cluster.logs().slice(-20_000)}`);
  } finally {
    await cluster.close();
  }
});
