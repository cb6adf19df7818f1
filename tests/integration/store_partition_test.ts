/**
 * The partitioned store (runtime/infra-host) across a network partition on real node processes: every mesh link
 * of n1 goes through a partition proxy; while writers keep writing through all three members, n1 is cut off
 * from both others (alive, silent) for a few seconds, then healed. The majority side must fail n1's partitions
 * over and keep acknowledging writes; writes through the cut-off n1 must not be acknowledged unless they
 * reached a quorum; after the heal the map converges (n1 owns its partitions again, nothing moving, owners
 * complete) and every acknowledged write reads back through every member.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { type NodeProcess, TestCluster } from "../_support/cluster.ts";

async function put(node: NodeProcess, key: string, value: string) {
  return await node.json<Record<string, unknown>>(`/api/v1/stores/split/entries/${key}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ value }),
    signal: AbortSignal.timeout(10_000),
  });
}

interface StoreView {
  name: string;
  moving: number;
  promoted: number;
  owned: number;
  complete: number;
}

async function view(node: NodeProcess): Promise<StoreView | undefined> {
  const { body } = await node.json<{ items: StoreView[] }>("/api/v1/stores");
  return body.items.find((s) => s.name === "split");
}

Deno.test({
  name: "store: a member cut off under write load: the majority fails over, nothing acknowledged is lost",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cluster = await TestCluster.start(3, { proxyLinks: true });
    try {
      await cluster.waitForLeader();
      const [n1, n2, n3] = cluster.nodes;
      const created = await n2.json("/api/v1/stores", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "split" }),
      });
      equal(created.status, 201);
      await cluster.waitFor("every partition served", async () => {
        const views = await Promise.all(cluster.nodes.map(view));
        return views.reduce((sum, v) => sum + (v?.promoted ?? 0), 0) === 1024;
      }, 30_000);

      const acked = new Map<string, string>();
      let cut = false;
      let ackedDuringCut = 0;
      let ackedThroughN1DuringCut = 0;
      let running = true;
      // Four writers through the majority's members, two through n1 (whose calls hang while it is cut off).
      const writer = async (w: number) => {
        for (let i = 0; running; i++) {
          const node = w < 4 ? [n2, n3][(w + i) % 2] : n1;
          const key = `w${w}-${i}`;
          const during = cut;
          try {
            const answer = await put(node, key, `${key}-v`);
            if (answer.status !== 200) continue;
            acked.set(key, `${key}-v`);
            if (during && cut) {
              ackedDuringCut++;
              if (node === n1) ackedThroughN1DuringCut++;
            }
          } catch { /* timed out: unknown */ }
        }
      };
      const writers = Array.from({ length: 6 }, (_, w) => writer(w));
      await new Promise((r) => setTimeout(r, 1_500));
      cluster.link("n1", "n2").partition();
      cluster.link("n1", "n3").partition();
      cut = true;
      await new Promise((r) => setTimeout(r, 6_000));
      cluster.link("n1", "n2").heal();
      cluster.link("n1", "n3").heal();
      cut = false;
      await new Promise((r) => setTimeout(r, 1_500));
      running = false;
      await Promise.all(writers);
      console.log(
        `store partition test: ${acked.size} acknowledged, ${ackedDuringCut} while n1 was cut off ` +
          `(${ackedThroughN1DuringCut} of them through n1)`,
      );
      ok(ackedDuringCut > 20, `the majority kept acknowledging writes during the cut (${ackedDuringCut})`);
      equal(
        ackedThroughN1DuringCut,
        0,
        "n1, cut off, acknowledged no write (it cannot reach a write quorum)",
      );

      await cluster.waitFor("the map to converge with n1 back", async () => {
        const views = await Promise.all(cluster.nodes.map(view));
        return views.every((v) => v && v.moving === 0 && v.owned === 1024 && v.complete === 1024) &&
          views.reduce((sum, v) => sum + v!.promoted, 0) === 1024;
      }, 60_000);
      for (const node of [n1, n2, n3]) {
        const lost: string[] = [];
        const keys = [...acked.keys()];
        for (let i = 0; i < keys.length; i += 50) {
          const batch = keys.slice(i, i + 50);
          const reads = await Promise.all(
            batch.map((k) => node.json<{ value?: string }>(`/api/v1/stores/split/entries/${k}`)),
          );
          reads.forEach((r, j) => {
            if (r.status !== 200 || r.body.value !== acked.get(batch[j])) {
              lost.push(`${batch[j]}: ${r.status}`);
            }
          });
        }
        deepStrictEqual(lost.slice(0, 10), [], `reads through ${node.id}`);
      }
    } catch (e) {
      console.error(cluster.logs().slice(-30_000));
      throw e;
    } finally {
      await cluster.close();
    }
  },
});
