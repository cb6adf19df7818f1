/**
 * The cluster event stream on real node processes (3 members on loopback): a killed member's `node.down`
 * reaches the SSE streams of both survivors; a frozen member is suspected, then down, then back; a stream
 * resumed with Last-Event-ID gets every event after that id exactly once and in order (the unfiltered ids of
 * one node are consecutive, so a gap would show); a resume point the node no longer holds is a 410 naming the
 * oldest id; `?type=` filters; `follow=false` answers JSON; the WebSocket feed sends the snapshot every
 * second and events as they happen; bad input is a 400 naming the parameter.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { runCli } from "../_support/cli.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import type { ClusterEvent } from "../../runtime/metrics/mod.ts";
import WebSocket from "ws";

/** An open SSE stream whose events are collected as they arrive. */
class EventReader {
  readonly events: ClusterEvent[] = [];
  readonly ids: string[] = [];
  ended = false;
  readonly #reader: ReadableStreamDefaultReader<string>;
  readonly #done: Promise<void>;

  private constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
    this.#done = this.#pump();
  }

  static async open(
    node: NodeProcess,
    query = "",
    headers: Record<string, string> = {},
  ): Promise<EventReader> {
    const response = await node.api(`/api/v1/events${query}`, { headers });
    equal(response.status, 200, await (response.status === 200 ? "" : response.text()));
    equal(response.headers.get("content-type"), "text/event-stream");
    return new EventReader(response.body!);
  }

  async #pump(): Promise<void> {
    let buffer = "";
    try {
      while (true) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id === undefined || data === undefined) continue;
          const event = JSON.parse(data) as ClusterEvent;
          equal(String(event.id), id, "the SSE id is the event's id");
          this.ids.push(id);
          this.events.push(event);
        }
      }
    } catch {
      // Cancelled.
    }
    this.ended = true;
  }

  async waitFor(
    what: string,
    match: (e: ClusterEvent) => boolean,
    timeoutMs = 20_000,
  ): Promise<ClusterEvent> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = this.events.find(match);
      if (found) return found;
      if (this.ended) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`no ${what} within ${timeoutMs} ms; got ${JSON.stringify(this.events.map(brief))}`);
  }

  async close(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.#done;
  }
}

function brief(e: ClusterEvent): string {
  return `${e.id} ${e.type} ${e.subject}`;
}

const isType = (type: string, subject: string) => (e: ClusterEvent) =>
  e.type === type && e.subject === subject;

/**
 * A step's precondition: every member runs (one a failed step left stopped is started again, so one failure
 * does not fail every later step) and every node reports a connection to every member.
 */
async function allConnected(cluster: TestCluster): Promise<void> {
  for (const node of cluster.nodes) if (!node.running) await node.start();
  await cluster.waitFor("every node connected to every member", async () => {
    for (const node of cluster.running()) {
      const { status, body } = await node.json<{ members: { id: string; connected: boolean }[] }>(
        "/api/v1/status",
      );
      if (status !== 200 || !body.members.every((m) => m.connected)) return false;
    }
    return true;
  }, 60_000);
}

Deno.test("events on 3 nodes: node down on the survivors' streams, suspected and back, resume, 410, filters, ws", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  const readers: EventReader[] = [];
  const open = async (node: NodeProcess, query = "", headers: Record<string, string> = {}) => {
    const reader = await EventReader.open(node, query, headers);
    readers.push(reader);
    return reader;
  };
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;

    await t.step("a killed member's node.down reaches both survivors' streams", async () => {
      const on1 = await open(n1, "?type=node");
      const on2 = await open(n2, "?type=node.down");
      // Connected after the streams opened: a link that flapped before would hide the kill's node.down.
      await allConnected(cluster);
      const killedAt = Date.now();
      await n3.kill();
      // The kill's own node.down (a link that flapped while waiting for allConnected left an older one).
      const afterKill = (e: ClusterEvent) => isType("node.down", "n3")(e) && e.time >= killedAt - 100;
      const down1 = await on1.waitFor("node.down n3 on n1", afterKill);
      const down2 = await on2.waitFor("node.down n3 on n2", afterKill);
      equal(down1.node, "n1");
      equal(down2.node, "n2");
      ok(down1.time - killedAt < 5_000, `down after ${down1.time - killedAt} ms`);
      ok(on1.events.every((e) => e.type.startsWith("node.")), "?type=node: only node.* events");
      ok(on2.events.every((e) => e.type === "node.down"), "?type=node.down: only node.down");
      await n3.start();
      await on1.waitFor("node.back n3 on n1", isType("node.back", "n3"));
    });

    await t.step("a frozen member is suspected, then down, then back when it thaws", async () => {
      await allConnected(cluster);
      const on1 = await open(n1, "?type=node");
      await allConnected(cluster);
      n3.freeze(true);
      try {
        await on1.waitFor("node.suspected n3", isType("node.suspected", "n3"), 20_000);
        await on1.waitFor("node.down n3", isType("node.down", "n3"), 20_000);
      } finally {
        n3.freeze(false);
      }
      const suspected = on1.events.find(isType("node.suspected", "n3"))!;
      const down = on1.events.find((e) => isType("node.down", "n3")(e) && e.id > suspected.id);
      ok(down, `down after suspected: ${JSON.stringify(on1.events.map(brief))}`);
      await on1.waitFor("node.back n3 after the thaw", (e) => isType("node.back", "n3")(e) && e.id > down.id);
    });

    await t.step("a stream resumed with Last-Event-ID loses nothing and repeats nothing", async () => {
      await allConnected(cluster);
      const first = await open(n1, "?recent=5");
      await first.waitFor("a replayed event", () => true, 5_000);
      const lastSeen = first.events.at(-1)!;
      await first.close();
      // Events happen while no stream is open: n3 restarts (down, then joined again as back).
      await n3.kill();
      await n3.start();
      await cluster.waitForLeader();
      // n1 sees n3 back once its own link to n3 is up again (it may lag the leader being known everywhere).
      const missed = await cluster.waitFor("node.down and node.back of n3 in n1's ring", async () => {
        const listed = await n1.json<{ events: ClusterEvent[] }>(
          `/api/v1/events?follow=false&since=${lastSeen.id}`,
        );
        equal(listed.status, 200);
        const events = listed.body.events;
        return events.some(isType("node.down", "n3")) && events.some(isType("node.back", "n3"))
          ? events
          : null;
      }, 60_000);
      const resumed = await open(n1, "", { "last-event-id": String(lastSeen.id) });
      await resumed.waitFor("the newest missed event", (e) => e.id === missed.at(-1)!.id);
      const ids = resumed.events.map((e) => e.id);
      deepEqual(ids.slice(0, missed.length), missed.map((e) => e.id), "the missed events first, in order");
      deepEqual(
        ids,
        ids.map((_, i) => lastSeen.id + 1 + i),
        "consecutive ids from the one after Last-Event-ID",
      );
    });

    await t.step("a resume point the node no longer holds is 410 naming the oldest id", async () => {
      const response = await n1.api("/api/v1/events", { headers: { "last-event-id": "5" } });
      equal(response.status, 410);
      equal(response.headers.get("content-type"), "application/problem+json");
      const problem = await response.json();
      equal(typeof problem.oldestId, "number");
      match(problem.detail, new RegExp(`after id 5 .*oldest held is ${problem.oldestId}`));
    });

    await t.step("bad input is a 400 naming what was wrong", async () => {
      for (
        const [query, headers, pattern] of [
          ["?type=Node.Down", {}, /query parameter type.*"Node\.Down"/],
          ["?since=-1", {}, /query parameter since/],
          ["?bogus=1", {}, /query parameter bogus: unknown/],
          ["", { "last-event-id": "abc" }, /header last-event-id/],
          ["?follow=maybe", {}, /follow/],
        ] as const
      ) {
        const response = await n2.api(`/api/v1/events${query}`, { headers });
        equal(response.status, 400, query);
        match((await response.json()).detail, pattern);
      }
      const notUpgraded = await n2.api("/api/v1/ws");
      equal(notUpgraded.status, 400);
      match((await notUpgraded.json()).detail, /Upgrade: websocket/);
    });

    await t.step("the WebSocket feed: a snapshot every second and events as they happen", async () => {
      await allConnected(cluster);
      const url = n2.apiUrl.replace(/^http/, "ws") + "/api/v1/ws";
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${cluster.token}` } });
      const messages: { kind: string; event?: ClusterEvent; snapshot?: unknown; time?: number }[] = [];
      ws.on("message", (data: unknown) => messages.push(JSON.parse(String(data))));
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
      });
      try {
        await cluster.waitFor(
          "two snapshots",
          () => Promise.resolve(messages.filter((m) => m.kind === "snapshot").length >= 2),
          5_000,
        );
        await allConnected(cluster);
        await n3.kill();
        await cluster.waitFor(
          "node.down n3 on the ws",
          () =>
            Promise.resolve(
              messages.some((m) =>
                m.kind === "event" && m.event!.type === "node.down" && m.event!.subject === "n3"
              ),
            ),
          10_000,
        );
        const snapshots = messages.filter((m) => m.kind === "snapshot");
        ok(snapshots.every((s) => typeof s.snapshot === "object"));
        const gaps = snapshots.slice(1).map((s, i) => s.time! - snapshots[i].time!);
        // About a second apart; the margins allow for a loaded machine (timers late, never early).
        ok(gaps.every((g) => g >= 500 && g <= 5_000), `snapshot gaps ${gaps}`);
      } finally {
        ws.close();
      }
      const refused = new WebSocket(url);
      const status = await new Promise<number>((resolve) => {
        refused.once(
          "unexpected-response",
          (_req: unknown, res: { statusCode: number }) => resolve(res.statusCode),
        );
        refused.once("open", () => resolve(101));
      });
      equal(status, 401, "the feed needs a token like every endpoint");
      // A browser cannot set headers on a WebSocket: it offers the token as a subprotocol (auth.ts). Deno's
      // own client sends the list as browsers do.
      const browserLike = new globalThis.WebSocket(url, ["aether.v1", `bearer.${cluster.token}`]);
      const first = await new Promise<{ kind: string }>((resolve, reject) => {
        browserLike.onmessage = (message) => resolve(JSON.parse(String(message.data)));
        browserLike.onerror = () => reject(new Error("the browser-like socket failed"));
      });
      equal(browserLike.protocol, "aether.v1", "the server picks the protocol the browser offered");
      equal(first.kind, "snapshot");
      browserLike.close();
      // The npm ws client joins the list with a bare ",", which Deno's upgrade cannot read: a 400 that says so.
      const joined = new WebSocket(url, ["aether.v1", `bearer.${cluster.token}`]);
      const joinedStatus = await new Promise<number>((resolve) => {
        joined.once(
          "unexpected-response",
          (_req: unknown, res: { statusCode: number }) => resolve(res.statusCode),
        );
        joined.once("open", () => resolve(101));
      });
      equal(joinedStatus, 400);
      await n3.start();
    });

    await t.step("aether events prints the recent events; --type filters", async () => {
      const out = await runCli([
        "--connect",
        n1.apiUrl,
        "--token",
        cluster.token,
        "events",
        "--type",
        "node.down",
        "--limit",
        "5",
      ]);
      equal(out.code, 0, out.stderr);
      match(out.stdout, /node\.down\s+n3/);
      ok(!/node\.back/.test(out.stdout));
    });

    await t.step("aether events --follow prints an event as it happens", async () => {
      await allConnected(cluster);
      const main = new URL("../../runtime/main.ts", import.meta.url).pathname;
      const args = ["--connect", n2.apiUrl, "--token", cluster.token, "events", "--follow", "--type", "node"];
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net", "--allow-read", "--allow-env", main, ...args],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
      let printed = "";
      const reading = (async () => {
        for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) printed += chunk;
      })();
      try {
        // The stream is open once the CLI is connected; give it a moment, then make an event happen.
        await new Promise((r) => setTimeout(r, 1_500));
        await allConnected(cluster);
        await n3.kill();
        await cluster.waitFor(
          "node.down n3 printed by aether events --follow",
          () => Promise.resolve(/node\.down\s+n3/.test(printed)),
        );
      } finally {
        child.kill("SIGTERM");
        await child.status;
        await reading.catch(() => {});
        await child.stderr.cancel().catch(() => {});
      }
    });
  } catch (e) {
    console.error(cluster.logs().slice(-20_000));
    throw e;
  } finally {
    for (const reader of readers) await reader.close();
    await cluster.close();
  }
});
