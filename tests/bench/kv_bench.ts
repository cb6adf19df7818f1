/**
 * `deno task bench:kv`: 3 Aether members and, in the same run, a 3-member etcd cluster (Debian's etcd-server,
 * installed when missing), both on loopback, driven by the same HTTP client with the same concurrency and value
 * size. Prints puts/s and p50/p99 for each and the ratio, then Aether's leader failover time (with etcd's for
 * comparison) and how long a member that missed N writes needs to catch up.
 *
 * Durability is comparable: Aether runs with --fsync always (every vote fsynced before it is sent, so an
 * acknowledged write is on the voters' disks); etcd fsyncs its WAL before acknowledging (its only mode). A second
 * Aether run with --fsync never (survives kill -9, not power loss) shows what the fsyncs cost.
 *
 * Flags: --concurrency 32 --duration-ms 10000 --value-bytes 256 --catchup-writes 100000 --skip-etcd
 */

import { parseArgs } from "node:util";
import { freePort, NodeProcess } from "../../runtime/forge/mod.ts";
import { testAdminToken } from "../_support/cluster.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    concurrency: { type: "string", default: "32" },
    "duration-ms": { type: "string", default: "10000" },
    "value-bytes": { type: "string", default: "256" },
    "catchup-writes": { type: "string", default: "100000" },
    "skip-etcd": { type: "boolean", default: false },
  },
});
const CONCURRENCY = Number(flags.concurrency);
const DURATION_MS = Number(flags["duration-ms"]);
const VALUE = new Uint8Array(Number(flags["value-bytes"])).fill(97);
const CATCHUP_WRITES = Number(flags["catchup-writes"]);

interface LoadResult {
  puts: number;
  errors: number;
  putsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** C workers issue puts back to back for the duration; worker w talks to target w mod N. */
async function drive(
  targets: ((key: string) => Promise<boolean>)[],
  durationMs: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const stopAt = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    const put = targets[w % targets.length];
    for (let i = 0; performance.now() < stopAt; i++) {
      const t = performance.now();
      if (await put(`bench/${w}/${i}`)) latencies.push(performance.now() - t);
      else errors++;
    }
  }));
  const elapsedMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    puts: latencies.length,
    errors,
    putsPerSecond: latencies.length / (elapsedMs / 1000),
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

function aetherPut(node: NodeProcess) {
  return async (key: string) => {
    const response = await node.api(`/api/v1/kv/app/${key}`, { method: "PUT", body: VALUE });
    await response.body?.cancel();
    return response.ok;
  };
}

const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

function etcdPut(clientUrl: string) {
  const value = base64(VALUE);
  return async (key: string) => {
    const response = await fetch(`${clientUrl}/v3/kv/put`, {
      method: "POST",
      body: JSON.stringify({ key: btoa(key), value }),
    });
    await response.body?.cancel();
    return response.ok;
  };
}

// ---------------------------------------------------------------------------------------------------- Aether

async function startAether(root: string, fsync: "always" | "never" = "always"): Promise<NodeProcess[]> {
  const secretFile = `${root}/secret`;
  await Deno.mkdir(root, { recursive: true });
  await Deno.writeTextFile(secretFile, crypto.randomUUID());
  const ids = ["n1", "n2", "n3"];
  const peers = ids.map((id) => `${id}@127.0.0.1:${freePort()}`).join(",");
  const token = testAdminToken();
  const bootstrapTokenFile = `${root}/admin-token`;
  await Deno.writeTextFile(bootstrapTokenFile, token);
  const nodes = ids.map((id) =>
    new NodeProcess({
      id,
      peers,
      dataDir: `${root}/${id}`,
      secretFile,
      bootstrapTokenFile,
      token,
      extraArgs: ["--fsync", fsync],
    })
  );
  await Promise.all(nodes.map((n) => n.start()));
  await leaderOf(nodes);
  return nodes;
}

/** The leader every running member names, once they agree. */
async function leaderOf(nodes: NodeProcess[], timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const running = nodes.filter((n) => n.running);
  while (Date.now() < deadline) {
    const leaders = await Promise.all(running.map(async (n) => {
      try {
        const { status, body } = await n.json<{ leader: string | null }>("/api/v1/health");
        return status === 200 ? body.leader : null;
      } catch {
        return null;
      }
    }));
    const first = leaders[0];
    if (first && running.some((n) => n.id === first) && leaders.every((l) => l === first)) return first;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("no leader");
}

async function aetherFailoverMs(nodes: NodeProcess[]): Promise<number> {
  const leader = await leaderOf(nodes);
  const node = nodes.find((n) => n.id === leader)!;
  const started = performance.now();
  await node.kill();
  await leaderOf(nodes);
  const ms = performance.now() - started;
  await node.start();
  await leaderOf(nodes);
  return ms;
}

async function aetherCatchUpMs(nodes: NodeProcess[], writes: number): Promise<number> {
  const [a, b, lagging] = nodes;
  await lagging.stop("SIGTERM");
  const targets = [aetherPut(a), aetherPut(b)];
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async (_, w) => {
    while (next < writes) {
      const i = next++;
      if (!(await targets[w % 2](`catchup/${i}`))) throw new Error("catch-up write failed");
    }
  }));
  const target = (await a.json<{ revision: number }>("/api/v1/status")).body.revision;
  const started = performance.now();
  await lagging.start();
  while ((await lagging.json<{ revision: number }>("/api/v1/status")).body.revision < target) {
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - started;
}

// ---------------------------------------------------------------------------------------------------- etcd

async function ensureEtcd(): Promise<string> {
  const which = await new Deno.Command("which", { args: ["etcd"], stdout: "piped" }).output();
  if (which.success) return new TextDecoder().decode(which.stdout).trim();
  console.log("etcd is missing: installing Debian's etcd-server (needs root)...");
  const install = await new Deno.Command("apt-get", {
    args: ["install", "-y", "etcd-server"],
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!install.success) throw new Error("could not install etcd-server; run as root or use --skip-etcd");
  return "/usr/bin/etcd";
}

interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  child: Deno.ChildProcess | null;
}

async function startEtcd(root: string, binary: string): Promise<EtcdMember[]> {
  const members = ["e1", "e2", "e3"].map((name) => ({
    name,
    clientUrl: `http://127.0.0.1:${freePort()}`,
    peerUrl: `http://127.0.0.1:${freePort()}`,
    child: null as Deno.ChildProcess | null,
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  for (const m of members) startEtcdMember(m, root, binary, initialCluster, "new");
  await etcdLeader(members);
  return members;
}

function startEtcdMember(
  m: EtcdMember,
  root: string,
  binary: string,
  initialCluster: string,
  state: string,
): void {
  m.child = new Deno.Command(binary, {
    args: [
      `--name=${m.name}`,
      `--data-dir=${root}/${m.name}`,
      `--listen-client-urls=${m.clientUrl}`,
      `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`,
      `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=${state}`,
      "--log-level=error",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** The member name every live member reports as leader, once a write can also be decided. */
async function etcdLeader(members: EtcdMember[], timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const live = members.filter((m) => m.child);
      const statuses = await Promise.all(live.map(async (m) => {
        const r = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: "POST", body: "{}" });
        return await r.json() as { leader?: string; header?: { member_id?: string } };
      }));
      const leaderId = statuses[0]?.leader;
      if (leaderId && leaderId !== "0" && statuses.every((s) => s.leader === leaderId)) {
        const index = statuses.findIndex((s) => s.header?.member_id === leaderId);
        if (index >= 0 && (await etcdPut(live[index].clientUrl)("probe"))) return live[index].name;
      }
    } catch {
      // Not up yet.
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("etcd has no leader");
}

async function etcdFailoverMs(members: EtcdMember[]): Promise<number> {
  const leader = await etcdLeader(members);
  const member = members.find((m) => m.name === leader)!;
  const started = performance.now();
  member.child!.kill("SIGKILL");
  await member.child!.status;
  member.child = null;
  await etcdLeader(members);
  return performance.now() - started;
}

async function stopEtcd(members: EtcdMember[]): Promise<void> {
  for (const m of members) {
    if (!m.child) continue;
    m.child.kill("SIGKILL");
    await m.child.status;
    m.child = null;
  }
}

// ---------------------------------------------------------------------------------------------------- run

function row(name: string, r: LoadResult): string {
  return `${name.padEnd(8)} ${r.putsPerSecond.toFixed(0).padStart(8)} puts/s   p50 ${
    r.p50Ms.toFixed(2).padStart(6)
  } ms   ` +
    `p99 ${r.p99Ms.toFixed(2).padStart(6)} ms   (${r.puts} puts, ${r.errors} errors)`;
}

const root = await Deno.makeTempDir({ prefix: "aether-bench-kv-" });
let aether: NodeProcess[] = [];
let etcd: EtcdMember[] = [];
try {
  console.log(
    `kv bench: 3 members each, ${CONCURRENCY} concurrent clients, ${VALUE.byteLength}-byte values, ` +
      `${DURATION_MS} ms per run, fsync on every write for both\n`,
  );
  aether = await startAether(`${root}/aether`);
  const aetherTargets = aether.map((n) => aetherPut(n));
  await drive(aetherTargets, 1_000); // warm-up
  const aetherResult = await drive(aetherTargets, DURATION_MS);
  console.log(row("aether", aetherResult));
  const relaxed = await startAether(`${root}/aether-nofsync`, "never");
  const relaxedTargets = relaxed.map((n) => aetherPut(n));
  await drive(relaxedTargets, 1_000);
  console.log(row("aether*", await drive(relaxedTargets, DURATION_MS)) + "   *--fsync never");
  await Promise.all(relaxed.map((n) => n.stop("SIGKILL")));

  let etcdResult: LoadResult | null = null;
  if (!flags["skip-etcd"]) {
    const binary = await ensureEtcd();
    etcd = await startEtcd(`${root}/etcd`, binary);
    const etcdTargets = etcd.map((m) => etcdPut(m.clientUrl));
    await drive(etcdTargets, 1_000);
    etcdResult = await drive(etcdTargets, DURATION_MS);
    console.log(row("etcd", etcdResult));
    console.log(
      `ratio    aether/etcd throughput ${
        (aetherResult.putsPerSecond / etcdResult.putsPerSecond).toFixed(2)
      }x, ` +
        `p99 ${(aetherResult.p99Ms / etcdResult.p99Ms).toFixed(2)}x`,
    );
  }

  console.log(`\nleader failover (kill -9 the leader, until every live member names the same new one):`);
  console.log(`aether   ${(await aetherFailoverMs(aether)).toFixed(0)} ms`);
  if (etcd.length > 0) {
    console.log(`etcd     ${(await etcdFailoverMs(etcd)).toFixed(0)} ms`);
    await stopEtcd(etcd);
  }

  console.log(`\ncatch-up: a member stopped while ${CATCHUP_WRITES} writes were made, then restarted:`);
  console.log(
    `aether   ${(await aetherCatchUpMs(aether, CATCHUP_WRITES)).toFixed(0)} ms until it reached the revision`,
  );
} finally {
  await Promise.all(aether.map((n) => n.stop("SIGKILL")));
  await stopEtcd(etcd);
  await Deno.remove(root, { recursive: true }).catch(() => {});
}
