/**
 * Durable state machines on 3 real node processes, through a slice declaring them
 * (tests/fixtures/scheduler/orders.ts): bad input; 60 events raced from all three nodes onto one instance are
 * each applied on their own version (none lost, none on the same version); pay and cancel racing: exactly one
 * wins; a state timeout fires its event through the scheduler, and not once the instance moved on; onEnter
 * runs; the operator's API and CLI; another group's slice cannot see or drive the instances.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { deployFixture, type Json, post, sleep } from "../_support/fixture_slices.ts";
import { runCli } from "../_support/cli.ts";

const ORDERS = new URL("../fixtures/scheduler/orders.ts", import.meta.url).pathname;
const INTRUDER = new URL("../fixtures/scheduler/intruder.ts", import.meta.url).pathname;
const GROUP = "org.example.orders";

Deno.test("state machines on 3 nodes: events serialize, timeouts fire, onEnter, bad input, other groups", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
    await deployFixture(cluster, n1, ORDERS, `${GROUP}:orders`, `"statemachine", "kv"`, "/orders/send");
    await deployFixture(
      cluster,
      n1,
      INTRUDER,
      "org.example.intruder:intruder",
      `"scheduler", "statemachine"`,
      "/intruder/machine",
    );

    await t.step("bad input names what was wrong", async () => {
      const created = await post(n1, "/orders/send", { machine: "order", id: "o-bad", event: "note" });
      equal(created.status, 200, JSON.stringify(created.body));
      equal(created.body.state, "created");
      const unknown = await post(n2, "/orders/send", { machine: "order", id: "o-bad", event: "ship" });
      equal(unknown.status, 409);
      match(
        String(unknown.body.detail),
        /in state created, which has no transition for event ship \(events: note, pay/,
      );
      const guard = await post(n2, "/orders/send", {
        machine: "order",
        id: "o-bad",
        event: "pay",
        data: { amount: 0 },
      });
      equal(guard.status, 409);
      match(String(guard.body.detail), /guard of created --pay--> paid refused \(amount gte 1\)/);
      const id = await post(n3, "/orders/send", { machine: "order", id: "bad id!", event: "note" });
      equal(id.status, 400);
      match(String(id.body.detail), /id must be 1-128 of/);
      const machine = await post(n3, "/orders/send", { machine: "nope", id: "x", event: "note" });
      equal(machine.status, 404);
      match(
        String(machine.body.detail),
        /no slice of group org\.example\.orders declares a state machine nope/,
      );
      const data = await n3.json<Json>(`/api/v1/machines/${GROUP}/order/o-bad/events`, {
        method: "POST",
        body: JSON.stringify({ event: "note", data: [1, 2] }),
      });
      equal(data.status, 400);
      match(String(data.body.detail), /data must be a JSON object/);
      const limit = await n3.json<Json>(`/api/v1/machines/${GROUP}/order?limit=0`);
      equal(limit.status, 400);
    });

    await t.step(
      "60 events raced from 3 nodes onto one instance: each applied once, on its own version",
      async () => {
        const nodes = [n1, n2, n3];
        const versions: number[] = [];
        const failures: Json[] = [];
        await Promise.all(nodes.map(async (node, n) => {
          // 4 concurrent senders per node, 5 events each.
          await Promise.all([0, 1, 2, 3].map(async (w) => {
            for (let i = 0; i < 5; i++) {
              const r = await post(node, "/orders/send", {
                machine: "counter",
                id: "c1",
                event: "inc",
                data: { [`n${n}w${w}i${i}`]: true },
              });
              if (r.status === 200) versions.push(r.body.version as number);
              else failures.push(r.body);
            }
          }));
        }));
        deepEqual(failures, [], "no event was lost or refused");
        equal(versions.length, 60);
        deepEqual([...versions].sort((a, b) => a - b), Array.from({ length: 60 }, (_, i) => i + 1));
        const final = await post(n2, "/orders/get", { machine: "counter", id: "c1" });
        const value = final.body.value as { version: number; data: Json; history: unknown[] };
        equal(value.version, 60);
        equal(Object.keys(value.data).length, 60, "every event's data merged");
        ok(value.history.length <= 20, "history is bounded");
      },
    );

    await t.step("pay and cancel racing from two nodes: exactly one wins", async () => {
      for (let k = 0; k < 5; k++) {
        const id = `race-${k}`;
        await post(n1, "/orders/send", { machine: "order", id, event: "note" });
        const [pay, cancel] = await Promise.all([
          post(n2, "/orders/send", { machine: "order", id, event: "pay", data: { amount: 5 } }),
          post(n3, "/orders/send", { machine: "order", id, event: "cancel" }),
        ]);
        equal([pay.status, cancel.status].filter((s) => s === 200).length, 1, JSON.stringify([pay, cancel]));
        equal([pay.status, cancel.status].filter((s) => s === 409).length, 1);
      }
    });

    await t.step(
      "a state timeout fires its event; not after the instance moved on; onEnter runs",
      async () => {
        const t1 = await post(n1, "/orders/send", { machine: "order", id: "o-t1", event: "note" });
        equal(t1.status, 200);
        const enteredAtMs = Date.now();
        await post(n2, "/orders/send", { machine: "order", id: "o-t2", event: "note" });
        const paid = await post(n3, "/orders/send", {
          machine: "order",
          id: "o-t2",
          event: "pay",
          data: { amount: 9 },
        });
        equal(paid.body.state, "paid");
        await sleep(900);
        const early = await post(n2, "/orders/get", { machine: "order", id: "o-t1" });
        equal((early.body.value as Json).state, "created", "not before its time");
        let expiredAtMs = 0;
        await cluster.waitFor("o-t1 expired", async () => {
          const r = await post(n3, "/orders/get", { machine: "order", id: "o-t1" });
          if ((r.body.value as Json).state !== "expired") return false;
          expiredAtMs = Date.now();
          return true;
        }, 10_000);
        ok(
          expiredAtMs - enteredAtMs >= 1_500,
          `expired after ${expiredAtMs - enteredAtMs} ms (timeout 1500)`,
        );
        const api = await n1.json<{ state: string; history: Array<{ event: string; from: string }> }>(
          `/api/v1/machines/${GROUP}/order/o-t1`,
        );
        equal(api.status, 200);
        equal(api.body.history.at(-1)?.event, "expire");
        await sleep(1_000);
        const t2 = await post(n1, "/orders/get", { machine: "order", id: "o-t2" });
        equal((t2.body.value as Json).state, "paid", "the timeout of an earlier state does nothing");
        await cluster.waitFor("onEnter of paid ran once", async () => {
          const hooks = await post(n2, "/orders/hooks", { id: "o-t2" });
          return hooks.body.value === 1;
        }, 10_000);
      },
    );

    await t.step("operator's API: list, send; another group sees nothing", async () => {
      const list = await n2.json<{ items: Array<{ machine: string; instances: number }> }>(
        `/api/v1/machines?group=${GROUP}`,
      );
      ok(list.body.items.some((m) => m.machine === "order" && m.instances >= 8), JSON.stringify(list.body));
      const instances = await n2.json<{ items: Array<{ id: string }> }>(
        `/api/v1/machines/${GROUP}/order?limit=3`,
      );
      equal(instances.body.items.length, 3);
      const shipped = await n3.json<Json>(`/api/v1/machines/${GROUP}/order/o-t2/events`, {
        method: "POST",
        body: JSON.stringify({ event: "ship" }),
      });
      equal(shipped.status, 200, JSON.stringify(shipped.body));
      equal(shipped.body.state, "shipped");
      const missing = await n3.json<Json>(`/api/v1/machines/${GROUP}/order/nobody`);
      equal(missing.status, 404);
      const look = await post(n1, "/intruder/machine", { machine: "order", id: "o-t2" });
      equal(look.status, 200);
      equal(look.body.value, null, "another group's instance is invisible");
      const drive = await post(n1, "/intruder/machine", { machine: "order", id: "o-t2", event: "cancel" });
      equal(drive.status, 404, JSON.stringify(drive.body));
      match(String(drive.body.detail), /no slice of group org\.example\.intruder declares/);
    });
    await t.step("CLI: aether sm get|list; delete frees the instance", async () => {
      const node = cluster.running()[2];
      const connect = ["--connect", node.apiUrl.replace("http://", ""), "--token", node.options.token!];
      const get = await runCli([...connect, "sm", "get", `${GROUP}/order`, "o-t1"]);
      equal(get.code, 0, get.stderr);
      match(
        get.stdout,
        /org\.example\.orders\/order o-t1: expired \(version 2, declared by org\.example\.orders:orders:1\.0\.0\)/,
      );
      match(get.stdout, /expire\s+created\s+expired\s+2/);
      const list = await runCli([...connect, "sm", "list"]);
      equal(list.code, 0, list.stderr);
      match(list.stdout, /org\.example\.orders\/order\s+org\.example\.orders:orders:1\.0\.0/);
      const bad = await runCli([...connect, "sm", "get", "order", "o-t1"]);
      ok(bad.code !== 0 && bad.stderr.includes("must be <group>/<name>"), bad.stderr);
      const missing = await runCli([...connect, "sm", "get", `${GROUP}/order`, "nobody"]);
      ok(missing.code !== 0 && missing.stderr.includes("no instance nobody"), missing.stderr);
      const del = await runCli([...connect, "sm", "delete", `${GROUP}/order`, "o-t1"]);
      equal(del.code, 0, del.stderr);
      match(del.stdout, /deleted org\.example\.orders\/order o-t1/);
      equal((await node.json(`/api/v1/machines/${GROUP}/order/o-t1`)).status, 404);
    });
  } catch (e) {
    console.log(
      cluster.logs().split("\n").filter((l) => /statemachine|scheduler|error/i.test(l)).slice(-60).join("\n"),
    );
    throw e;
  } finally {
    await cluster.close();
  }
});
