import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import type { KvCommand, KvEvent } from "./commands.ts";
import { KvState } from "./state.ts";
import { type Watch, type WatchBatch, WatchHub } from "./watch.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** A state machine wired to a hub the way the node wires them: every applied command's events are published. */
class Node {
  state = new KvState();
  hub: WatchHub;
  constructor(hub: WatchHub) {
    this.hub = hub;
  }
  apply(command: KvCommand): void {
    const events: KvEvent[] = [];
    this.state.apply(command, events);
    this.hub.publish(events);
  }
  put(key: string, value = key): void {
    this.apply({ type: "put", key, value: bytes(value) });
  }
}

async function take(watch: Watch, count: number): Promise<WatchBatch[]> {
  const out: WatchBatch[] = [];
  while (out.length < count) {
    const next = await watch.next();
    assert.equal(next.done, false, `the watch ended after ${out.length} of ${count} batches`);
    out.push(next.value);
  }
  return out;
}

function summary(batches: WatchBatch[]): string[] {
  return batches.map((b) => `${b.revision}:${b.events.map((e) => `${e.type} ${e.key}`).join(",")}`);
}

async function rejection(promise: Promise<unknown>): Promise<AetherError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof AetherError, `expected an AetherError, got ${e}`);
    return e;
  }
  assert.fail("expected the promise to reject");
}

Deno.test("watch: replays history then live changes in revision order, a transaction's events together", async () => {
  const node = new Node(new WatchHub());
  node.put("a/1");
  node.apply({
    type: "txn",
    compare: [],
    success: [{ op: "put", key: "a/2", value: bytes("x") }, { op: "put", key: "b/1", value: bytes("y") }],
    failure: [],
  });
  const watch = node.hub.watch("", 1);
  node.apply({ type: "delete", key: "a/1" });
  node.apply({ type: "txn", compare: [], success: [{ op: "deletePrefix", prefix: "a/" }], failure: [] });
  assert.deepEqual(summary(await take(watch, 4)), [
    "1:put a/1",
    "2:put a/2,put b/1",
    "3:delete a/1",
    "4:delete a/2",
  ]);
  watch.cancel();
});

Deno.test("watch: only keys under the prefix, including the matching part of a mixed transaction", async () => {
  const node = new Node(new WatchHub());
  const apps = node.hub.watch("app/");
  const exact = node.hub.watch("app/x");
  node.put("application");
  node.put("app/x");
  node.put("app/xy");
  node.put("other/x");
  node.apply({
    type: "txn",
    compare: [],
    success: [{ op: "put", key: "other/y", value: bytes("1") }, {
      op: "put",
      key: "app/z",
      value: bytes("2"),
    }],
    failure: [],
  });
  assert.deepEqual(summary(await take(apps, 3)), ["2:put app/x", "3:put app/xy", "5:put app/z"]);
  assert.deepEqual(summary(await take(exact, 2)), ["2:put app/x", "3:put app/xy"]);
  apps.cancel();
  exact.cancel();
});

Deno.test("watch: without fromRevision only later changes arrive; a future fromRevision waits for it", async () => {
  const node = new Node(new WatchHub());
  node.put("k/1");
  const live = node.hub.watch("k/");
  const future = node.hub.watch("k/", 4);
  node.put("k/2");
  node.put("k/3");
  node.put("k/4");
  assert.deepEqual(summary(await take(live, 3)), ["2:put k/2", "3:put k/3", "4:put k/4"]);
  assert.deepEqual(summary(await take(future, 1)), ["4:put k/4"]);
  live.cancel();
  future.cancel();
});

Deno.test("watch: the seam between replay and live neither skips nor repeats under concurrent publishes", async () => {
  // Publishers and consumers interleave at random points: many watches start mid-stream and read at their own
  // pace; each must see every revision from its start exactly once, in order, up to a final sentinel.
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const node = new Node(new WatchHub({ historyEvents: 100_000, queueEvents: 100_000 }));
  const consumers: Promise<void>[] = [];
  const pause = () => random() < 0.5 ? Promise.resolve() : new Promise((r) => setTimeout(r, 0));

  for (let i = 1; i <= 600; i++) {
    node.put(`k/${i % 10}`, String(i));
    if (i % 2 === 0) node.apply({ type: "delete", key: `k/${(i + 5) % 10}` });
    if (i % 50 === 0) {
      const from = Math.max(1, node.hub.revision - Math.floor(random() * 80));
      const watch = node.hub.watch("k/", from);
      consumers.push((async () => {
        let expected = from;
        for await (const batch of watch) {
          assert.equal(
            batch.revision,
            expected,
            `watch from ${from}: got ${batch.revision}, expected ${expected}`,
          );
          expected++;
          if (batch.events[0].key === "k/end") break;
          await pause();
        }
        assert.equal(expected, node.hub.revision + 1, `watch from ${from} stopped before the end`);
      })());
    }
    if (random() < 0.3) await pause();
  }
  node.put("k/end");
  await Promise.all(consumers);
  assert.equal(consumers.length, 12);
  assert.equal(node.hub.watcherCount, 0, "breaking out of for-await cancels the watch");
});

Deno.test("watch: a revision older than the retained history fails with gone, naming the oldest available", async () => {
  const node = new Node(new WatchHub({ historyEvents: 10 }));
  for (let i = 1; i <= 30; i++) node.put(`k/${i}`);
  assert.equal(node.hub.oldestRevision, 21);
  assert.throws(() => node.hub.watch("k/", 5), (e: unknown) => {
    assert.ok(e instanceof AetherError);
    assert.equal(e.code, "gone");
    assert.equal(e.status, 410);
    assert.equal(e.extra.oldestRevision, 21);
    assert.match(e.message, /from revision 5: .*oldest revision still available is 21/);
    return true;
  });
  const ok = node.hub.watch("k/", 21);
  assert.deepEqual((await take(ok, 10)).map((b) => b.revision), [21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
  ok.cancel();

  // A watch still replaying when the history moves past it fails the same way, instead of skipping.
  const slow = node.hub.watch("k/", 21);
  assert.equal((await slow.next()).value?.revision, 21);
  for (let i = 31; i <= 45; i++) node.put(`k/${i}`);
  const error = await rejection(slow.next());
  assert.equal(error.code, "gone");
  assert.equal(error.extra.oldestRevision, 36);
  assert.match(error.message, /from revision 22/);
  assert.equal((await slow.next()).done, true);
  assert.equal(node.hub.watcherCount, 0);
});

Deno.test("watch: a consumer that falls behind is ended with overloaded and resumes exactly", async () => {
  const node = new Node(new WatchHub({ queueEvents: 5 }));
  const watch = node.hub.watch("k/", 1);
  node.put("k/1");
  node.put("k/2");
  assert.deepEqual((await take(watch, 2)).map((b) => b.revision), [1, 2]);
  for (let i = 3; i <= 9; i++) node.put(`k/${i}`);
  assert.equal(node.hub.watcherCount, 0, "the overflowing watch is dropped at once, its queue with it");
  const error = await rejection(watch.next());
  assert.equal(error.code, "overloaded");
  assert.equal(error.extra.resumeRevision, 3);
  assert.match(error.message, /fell behind: more than 5 events .* resume from revision 3/);
  assert.equal((await watch.next()).done, true);

  const resumed = node.hub.watch("k/", error.extra.resumeRevision as number);
  assert.deepEqual((await take(resumed, 7)).map((b) => b.revision), [3, 4, 5, 6, 7, 8, 9]);
  resumed.cancel();

  // The byte bound works the same way.
  const small = node.hub.watch("k/", undefined, { queueBytes: 1_000 });
  node.put("k/big", "x".repeat(2_000));
  assert.equal((await rejection(small.next())).code, "overloaded");
});

Deno.test("watch: a slow watcher does not hold the history back, and a fast one is unaffected by it", async () => {
  const node = new Node(new WatchHub({ historyEvents: 50, queueEvents: 20 }));
  const slow = node.hub.watch("k/");
  const fast = node.hub.watch("k/");
  const seen: number[] = [];
  const reading = (async () => {
    for await (const batch of fast) {
      seen.push(batch.revision);
      if (batch.revision === 200) break;
    }
  })();
  for (let i = 1; i <= 200; i++) {
    node.put(`k/${i}`);
    await Promise.resolve();
  }
  await reading;
  assert.deepEqual(seen, Array.from({ length: 200 }, (_, i) => i + 1));
  assert.equal((await rejection(slow.next())).code, "overloaded");
  assert.ok(node.hub.historyStats.events <= 50);
});

Deno.test("watch: cancel, break, abort signal and closing the hub end watches", async () => {
  const hub = new WatchHub();
  const node = new Node(hub);
  const watch = hub.watch("");
  const pending = watch.next();
  watch.cancel();
  assert.deepEqual(await pending, { done: true, value: undefined });
  assert.equal(watch.finished, true);
  node.put("a");
  assert.equal((await watch.next()).done, true);

  const controller = new AbortController();
  const aborted = hub.watch("", undefined, { signal: controller.signal });
  const waiting = aborted.next();
  controller.abort();
  assert.equal((await waiting).done, true);

  const closing = hub.watch("");
  const waitingForClose = closing.next();
  hub.close();
  assert.equal((await waitingForClose).done, true);
  assert.equal(hub.watcherCount, 0);
  assert.throws(() => hub.watch(""), /closed/);
});

Deno.test("watch: reset ends watches that needed replaced revisions and keeps later ones", async () => {
  const node = new Node(new WatchHub());
  node.put("k/1");
  const old = node.hub.watch("k/", 1);
  const later = node.hub.watch("k/", 60);
  node.hub.reset(50);
  const error = await rejection(old.next());
  assert.equal(error.code, "gone");
  assert.equal(error.extra.oldestRevision, 51);
  assert.match(error.message, /snapshot replaced the state/);
  assert.throws(
    () => node.hub.watch("k/", 50),
    (e: unknown) => e instanceof AetherError && e.code === "gone",
  );
  node.hub.publish([{ type: "put", key: "k/x", value: bytes("1"), revision: 60 }]);
  assert.deepEqual(summary(await take(later, 1)), ["60:put k/x"]);
  later.cancel();
});

Deno.test("watch: publish refuses revisions that do not move forward; bad arguments are refused", () => {
  const hub = new WatchHub({ revision: 10 });
  assert.throws(
    () => hub.publish([{ type: "delete", key: "a", revision: 10 }]),
    /event revision 10 does not follow revision 10/,
  );
  hub.publish([{ type: "delete", key: "a", revision: 11 }, { type: "delete", key: "b", revision: 11 }]);
  assert.throws(
    () => hub.publish([{ type: "delete", key: "a", revision: 11 }]),
    /does not follow revision 11/,
  );
  assert.throws(() => hub.watch("", -1), /fromRevision must be an integer >= 0/);
  assert.throws(() => hub.watch("", 1.5), /fromRevision/);
  assert.throws(() => hub.watch("", 10), (e: unknown) => e instanceof AetherError && e.code === "gone");
  assert.throws(() => new WatchHub({ historyEvents: 0 }), /historyEvents/);
});

Deno.test("watch: beyond maxWatchers a new watch is refused with overloaded; open ones keep their changes", async () => {
  const node = new Node(new WatchHub({ maxWatchers: 2 }));
  const first = node.hub.watch("a/");
  const second = node.hub.watch("");
  assert.throws(
    () => node.hub.watch("a/"),
    (e: unknown) =>
      e instanceof AetherError && e.code === "overloaded" && e.status === 503 &&
      e.extra.retryAfterSeconds === 1 && /2 watches are open, the limit is 2/.test(e.message),
  );
  assert.throws(
    () => node.hub.watch("b/"),
    (e: unknown) => e instanceof AetherError && e.code === "overloaded",
  );
  assert.deepEqual(node.hub.stats, {
    watchers: 2,
    maxWatchers: 2,
    watchersRefused: 2,
    historyRevisions: 0,
    historyEvents: 0,
    historyBytes: 0,
  });
  node.put("a/1");
  assert.deepEqual(summary(await take(first, 1)), ["1:put a/1"]);
  assert.deepEqual(summary(await take(second, 1)), ["1:put a/1"]);
  // A cancelled watch frees its place.
  first.cancel();
  const third = node.hub.watch("a/", 1);
  assert.deepEqual(summary(await take(third, 1)), ["1:put a/1"]);
  assert.equal(node.hub.stats.watchers, 2);
  assert.equal(node.hub.stats.watchersRefused, 2);
  assert.throws(() => new WatchHub({ maxWatchers: 0 }), /maxWatchers/);
  second.cancel();
  third.cancel();
});

Deno.test("watch: random publishes, trims, resets and watchers keep the hub's invariants and revision order", async () => {
  const { Rng } = await import("../core/mod.ts");
  for (let seed = 1; seed <= 10; seed++) {
    const rng = new Rng(seed);
    const hub = new WatchHub({ historyEvents: 20, historyBytes: 4096, queueEvents: 50, maxWatchers: 5 });
    let revision = 0;
    const seen: number[][] = [];
    const consumers: Promise<void>[] = [];
    for (let step = 0; step < 300; step++) {
      const roll = rng.next();
      if (roll < 0.7) {
        const events: KvEvent[] = [];
        for (let r = rng.int(1, 3); r > 0; r--) {
          revision++;
          for (let e = rng.int(1, 4); e > 0; e--) {
            events.push({
              type: "put",
              key: `k/${rng.int(0, 9)}`,
              value: new Uint8Array(rng.int(0, 300)),
              revision,
            });
          }
        }
        hub.publish(events);
      } else if (roll < 0.75) {
        revision += rng.int(0, 5);
        hub.reset(revision);
      } else if (hub.stats.watchers < 5) {
        const from = Math.max(hub.oldestRevision, revision - rng.int(0, 5));
        const watch = hub.watch(rng.chance(0.5) ? "" : "k/1", from);
        const revisions: number[] = [];
        seen.push(revisions);
        consumers.push((async () => {
          try {
            for await (const batch of watch) revisions.push(batch.revision);
          } catch {
            // gone or overloaded: the watch ended, which is allowed here
          }
        })());
      }
      for (let i = 0; i < 5; i++) await null; // let the consumers read what is ready
      const stats = hub.stats;
      assert.ok(stats.watchers <= 5 && stats.historyEvents <= 20 && stats.historyBytes <= 4096);
    }
    hub.close();
    await Promise.all(consumers);
    for (const revisions of seen) {
      for (let i = 1; i < revisions.length; i++) {
        assert.ok(revisions[i] > revisions[i - 1], `seed ${seed}: ${revisions[i]} after ${revisions[i - 1]}`);
      }
    }
    assert.ok(seen.some((r) => r.length > 0), `seed ${seed}: no watcher saw anything`);
  }
});
