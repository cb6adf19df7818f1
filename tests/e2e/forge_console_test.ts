/**
 * Forge's console in a real browser (Debian's Chromium through playwright-core): a real `aether forge` with 3
 * nodes and no example, its console opened at the control channel's address. Killing a node from the console
 * restarts it (the restart count grows, the fault log says so); a partition from the console cuts the link in
 * the cluster (the members' own health says so) and heal restores it; a load started from the console moves its
 * live chart and stops on request; a page of another origin cannot send
 * commands; no request leaves the console's origin and the console stays clean.
 */

import { equal, ok } from "node:assert/strict";
import { aetherBinDir, startForge } from "./_forge.ts";
import { accessibilityProblems, launchChromium, screenshot } from "./_browser.ts";

interface ForgeJson {
  control: string;
  nodes: { id: string; api: string; restarts: number }[];
}

async function connected(api: string, peer: string): Promise<boolean | undefined> {
  const response = await fetch(`http://${api}/api/v1/health`).catch(() => null);
  if (!response) return undefined;
  const body = await response.json() as { members?: { id: string; connected: boolean }[] };
  return body.members?.find((m) => m.id === peer)?.connected;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

Deno.test("Forge's console in Chromium: kill and restart, partition and heal, other origins refused", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "aether-forge-console-" });
  const forge = await startForge({
    cwd,
    binDir: await aetherBinDir(),
    args: ["--no-example", "--free-ports"],
    nodes: 3,
    minSlices: 0,
    timeoutMs: 90_000,
  });
  const browser = await launchChromium();
  try {
    const state = JSON.parse(await Deno.readTextFile(`${cwd}/.forge/forge.json`)) as ForgeJson;
    const control = state.control;
    ok(forge.output().includes(`${control}/`), "the banner names the console");
    const page = await browser.newPage();
    const requests: string[] = [];
    const errors: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${control}/`);
    const rows = page.locator('[data-testid="forge-nodes"] tbody tr[data-running="true"]');
    await until("three running nodes on the console", async () => await rows.count() === 3);
    const problems = await accessibilityProblems(page);
    equal(problems.length, 0, problems.join("\n"));

    // Kill from the console: Forge restarts the node, the console shows the restart and logs the kill.
    await page.getByRole("button", { name: "Kill n2" }).click();
    await page.getByTestId("forge-log").getByText("kill n2").waitFor();
    await page.locator('[data-testid="forge-nodes"] tr[data-node="n2"][data-running="true"]', {
      hasText: "1",
    })
      .waitFor({ timeout: 30_000 });

    // Partition n1-n3 from the console: the members themselves see the link down; heal brings it back.
    const n1 = state.nodes.find((n) => n.id === "n1")!.api;
    await page.getByRole("button", { name: "Partition n1 n3" }).click();
    await page.locator('[data-testid="forge-links"] tr[data-link="n1-n3"][data-cut="true"]').waitFor();
    await until("n1 to see n3 cut off", async () => (await connected(n1, "n3")) === false);
    await page.getByRole("button", { name: "Heal all" }).click();
    await page.locator('[data-testid="forge-links"] tr[data-link="n1-n3"][data-cut="false"]').waitFor();
    await until("n1 to reach n3 again", async () => (await connected(n1, "n3")) === true);
    await page.getByTestId("forge-log").getByText("heal").waitFor();
    await screenshot(page, "forge-console");

    // A load from the console: the live figures move (no example is deployed, so its answers are 404s, which
    // the chart counts as answers and as failures), and it stops on request.
    await page.getByLabel("Target").fill("GET /api/v1/nothing");
    await page.getByLabel("Requests/s").fill("40");
    await page.getByLabel("Seconds").fill("30");
    await page.getByRole("button", { name: "Start load" }).click();
    await page.getByTestId("load-state").getByText("Running: GET /api/v1/nothing at 40/s").waitFor();
    await until("the chart's figures to move", async () => {
      const text = await page.getByTestId("load-state").textContent() ?? "";
      const answers = Number(/last second (\d+) answers/.exec(text)?.[1] ?? 0);
      return answers > 10;
    });
    ok(await page.locator('[data-testid="load-chart"] canvas').count() > 0, "the chart is drawn");
    await screenshot(page, "forge-console-load");
    await page.getByRole("button", { name: "Stop" }).click();
    await page.getByTestId("load-state").getByText("No load running").waitFor();

    // A page of another origin may not command Forge (a browser sends its Origin; the CLI sends none).
    const foreign = await fetch(`${control}/nodes/n3/kill`, {
      method: "POST",
      headers: { origin: "http://evil.example", "content-type": "text/plain" },
      body: "{}",
    });
    equal(foreign.status, 403);
    ok((await foreign.json()).detail.includes("evil.example"));

    const outside = requests.filter((url) => !url.startsWith(`${control}/`) && !url.startsWith("data:"));
    equal(outside.length, 0, `requests outside ${control}: ${outside.join(", ")}`);
    equal(errors.length, 0, `console errors:\n${errors.join("\n")}`);
  } finally {
    await browser.close().catch(() => {});
    await forge.stop();
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
});
