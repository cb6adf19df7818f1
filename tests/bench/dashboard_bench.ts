/**
 * What an open dashboard costs the node that serves it: the node process's CPU (user + system, from /proc)
 * over a quiet spell with no dashboard, then with N dashboards open in Chromium (each signed in, live over the
 * status WebSocket), on a 3-node cluster with the ecommerce example deployed.
 *
 *   npx -y deno@2.9.6 run -A tests/bench/dashboard_bench.ts [--dashboards 10] [--seconds 10]
 *
 * Prints the CPU share of a core without and with the dashboards, the difference per dashboard, and the bytes
 * the page's socket receives per second.
 */

import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { TestCluster } from "../_support/cluster.ts";
import { deployExample } from "../../runtime/forge/mod.ts";
import { cpuSeconds } from "./_proc_cpu.ts";

const { values } = parseArgs({
  options: { dashboards: { type: "string", default: "10" }, seconds: { type: "string", default: "10" } },
});
const dashboards = Number(values.dashboards);
const seconds = Number(values.seconds);
if (!Number.isInteger(dashboards) || dashboards < 1 || dashboards > 50) {
  throw new Error(`--dashboards: "${values.dashboards}" is not an integer from 1 to 50`);
}
if (!Number.isFinite(seconds) || seconds < 2 || seconds > 120) {
  throw new Error(`--seconds: "${values.seconds}" is not a number from 2 to 120`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function cpuShare(pid: number): Promise<number> {
  const before = cpuSeconds(pid, true);
  const startedAt = performance.now();
  await sleep(seconds * 1000);
  return (cpuSeconds(pid, true) - before) / ((performance.now() - startedAt) / 1000);
}

const distDir = await Deno.makeTempDir({ prefix: "aether-dashboard-bench-" });
const cluster = await TestCluster.start(3);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-background-networking"],
});
try {
  await cluster.waitForLeader();
  await deployExample("ecommerce", cluster.nodes[0].apiUrl.replace("http://", ""), distDir, cluster.token);
  const node = cluster.nodes[1];
  const pid = node.process!.pid;
  await sleep(2_000);
  const idle = await cpuShare(pid);

  let socketBytes = 0;
  for (let i = 0; i < dashboards; i++) {
    const page = await (await browser.newContext()).newPage();
    page.on("websocket", (ws) => ws.on("framereceived", (f) => socketBytes += String(f.payload).length));
    await page.goto(`${node.apiUrl}/`);
    await page.getByLabel("Token").fill(cluster.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("live-mode").getByText("live").waitFor({ timeout: 10_000 });
  }
  await sleep(2_000);
  const bytesBefore = socketBytes;
  const withDashboards = await cpuShare(pid);
  const bytesPerSecond = (socketBytes - bytesBefore) / seconds / dashboards;

  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  console.log(`node ${node.id}, ${seconds} s each, a quiet cluster (15 instances, no traffic)`);
  console.log(`  no dashboard:           ${pct(idle)} of a core`);
  console.log(`  ${String(dashboards).padStart(2)} live dashboards:     ${pct(withDashboards)} of a core`);
  console.log(`  per dashboard:          ${pct((withDashboards - idle) / dashboards)} of a core`);
  console.log(`  socket, per dashboard:  ${Math.round(bytesPerSecond)} B/s received`);
} finally {
  await browser.close();
  await cluster.close();
  await Deno.remove(distDir, { recursive: true }).catch(() => {});
}
