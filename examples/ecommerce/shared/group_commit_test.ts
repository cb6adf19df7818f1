/** The shop's group commit of deltas (group_commit.ts): merged writes, one at a time, each with a live client. */

import { deepEqual, equal } from "node:assert/strict";
import { GroupCommit } from "./group_commit.ts";

/** A request's client: it refuses calls once its request ended (its deadline passed). */
interface Client {
  name: string;
  ended: boolean;
}

function counter() {
  const writes: Array<{ client: string; total: number }> = [];
  let total = 0;
  const errors: string[] = [];
  const commit = new GroupCommit<Client, { n: number }>({
    empty: () => ({ n: 0 }),
    merge: (into, more) => void (into.n += more.n),
    async write(client, deltas) {
      await new Promise((r) => setTimeout(r, 10));
      if (client.ended) throw new Error(`the deadline of ${client.name}'s @infra.batch had passed`);
      total += deltas.n;
      writes.push({ client: client.name, total });
    },
    onError: (e) => errors.push((e as Error).message),
  });
  return { commit, writes, errors, total: () => total };
}

Deno.test("group commit: deltas added during a write go together in the next one", async () => {
  const { commit, writes } = counter();
  const a = { name: "a", ended: false };
  // An idle commit writes at once; what arrives meanwhile goes together in the next write.
  await Promise.all([commit.add(a, { n: 1 }), commit.add(a, { n: 2 }), commit.add(a, { n: 3 })]);
  deepEqual(writes, [{ client: "a", total: 1 }, { client: "a", total: 6 }]);
});

Deno.test("group commit: each write goes with the newest waiting request's client, not the first one's", async () => {
  const { commit, writes, errors, total } = counter();
  const first = { name: "first", ended: false };
  const running = commit.add(first, { n: 1 });
  // The first request ends while its write is in flight; later requests keep adding (steady load: the writes
  // follow one another without a pause). Before, every later write went with the first request's client.
  const later = { name: "later", ended: false };
  const second = commit.add(later, { n: 2 });
  await running;
  first.ended = true;
  await second;
  equal(errors.length, 0, errors.join("; "));
  deepEqual(writes.map((w) => w.client), ["first", "later"]);
  equal(total(), 3);
});

Deno.test("group commit: a failed write keeps its deltas for the next write; its waiters are answered", async () => {
  const { commit, errors, total } = counter();
  const dead = { name: "dead", ended: true };
  await commit.add(dead, { n: 5 });
  equal(errors.length, 1);
  equal(total(), 0);
  await commit.add({ name: "live", ended: false }, { n: 1 });
  equal(total(), 6, "the failed write's 5 went with the next");
});
