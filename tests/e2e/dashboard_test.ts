/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against a real 3-node cluster
 * with the ecommerce example deployed, every page served by a node's api port.
 *
 * 1. the committed build (dashboard/dist) is what `deno task dashboard:build` makes now (stale assets fail);
 * 2. the node serves `/` with a CSP, revalidation, gzip and a 304 for a current copy; assets cached for a year;
 * 3. a viewer token signs in: the overview shows three members and the leader, the Slices page shows every
 *    slice and no action button; the token lives in sessionStorage (a reload keeps it, a new tab does not);
 * 4. an operator scales a slice from the Slices page and the cluster's instance count changes;
 * 5. an alert rule added on the Alerts page fires under load (orders through the app port) and shows as firing
 *    there and on the overview;
 * 6. the page is live over the status WebSocket and polls nothing while it is up; kill -9 of a member shows it
 *    down on the overview within 3 s and the event appears in the feed;
 * 7. through all of it: no request leaves the node's origin, the console has no error, axe-core finds no
 *    serious or critical violation on any page; screenshots of each page go to the artifacts directory.
 *
 * Figures printed: JavaScript transferred for the first page (compressed) and the time to a live overview.
 */

import { equal, ok } from "node:assert/strict";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { accessibilityProblems, ARTIFACTS, launchChromium, screenshot } from "./_browser.ts";
import { TestCluster } from "../_support/cluster.ts";
import { sliceStatuses } from "../_support/deployment.ts";
import { deployExample } from "../../runtime/forge/mod.ts";
import { ORDER, SLICES } from "./_ecommerce.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("the committed dashboard build is what dashboard:build makes from the sources now", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "dashboard:build", "--check"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  ok(output.success, `dashboard/dist is stale or the build failed:\n${text}`);
});

interface Watch {
  requests: string[];
  consoleErrors: string[];
  scriptBytes: number;
}

/** Records every request the page makes, console errors and page errors, and compressed script bytes. */
function watch(page: Page): Watch {
  const seen: Watch = { requests: [], consoleErrors: [], scriptBytes: 0 };
  page.on("request", (r) => seen.requests.push(r.url()));
  page.on("console", (m) => {
    if (m.type() === "error") seen.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => seen.consoleErrors.push(`page error: ${e.message}`));
  page.on("response", async (r) => {
    if (r.request().resourceType() !== "script") return;
    const sizes = await r.request().sizes().catch(() => null);
    if (sizes) seen.scriptBytes += sizes.responseBodySize;
  });
  return seen;
}

async function signIn(page: Page, origin: string, token: string): Promise<void> {
  await page.goto(`${origin}/`);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("who").waitFor();
}

async function createToken(cluster: TestCluster, name: string, role: string): Promise<string> {
  const { status, body } = await cluster.nodes[0].json<{ token: string }>("/api/v1/tokens", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, role }),
  });
  equal(status, 201, `creating the ${role} token: ${JSON.stringify(body)}`);
  return body.token;
}

Deno.test("dashboard in Chromium against a 3-node cluster: sign in, overview, slices, scale, node down", async (t) => {
  const distDir = await Deno.makeTempDir({ prefix: "aether-dashboard-dist-" });
  const cluster = await TestCluster.start(3);
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  const step = async (name: string, fn: () => Promise<void>) => {
    if (!(await t.step(name, fn))) throw new Error(`step failed: ${name} (later steps need it)`);
  };
  try {
    const leader = await cluster.waitForLeader();
    await deployExample("ecommerce", cluster.nodes[0].apiUrl.replace("http://", ""), distDir, cluster.token);
    // The page is served by a member that was not the leader at the start and is not killed later.
    const served = cluster.nodes.find((n) => n.id !== leader)!;
    const victim = cluster.nodes.find((n) => n.id !== leader && n !== served)!;
    const origin = served.apiUrl;
    const viewerToken = await createToken(cluster, "dash-viewer", "viewer");
    const operatorToken = await createToken(cluster, "dash-operator", "operator");

    await step(
      "the node serves the shell with a CSP, revalidation and gzip, and assets for a year",
      async () => {
        const response = await fetch(`${origin}/`, { headers: { "accept-encoding": "gzip" } });
        const html = await response.text();
        equal(response.status, 200);
        equal(response.headers.get("content-type"), "text/html; charset=utf-8");
        ok(response.headers.get("content-security-policy")?.includes("script-src 'self'"));
        equal(response.headers.get("cache-control"), "no-cache");
        ok(html.includes('data-island="page"'), "the shell is server-rendered with its islands");
        const etag = response.headers.get("etag")!;
        const again = await fetch(`${origin}/`, { headers: { "if-none-match": etag } });
        await again.body?.cancel();
        equal(again.status, 304);
        const script = /src="(\/assets\/app\.[0-9a-f]+\.js)"/.exec(html)![1];
        const asset = await fetch(`${origin}${script}`, { headers: { "accept-encoding": "gzip" } });
        await asset.arrayBuffer();
        equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable");
        const missing = await fetch(`${origin}/assets/nope.js`);
        equal(missing.status, 404);
        equal(missing.headers.get("content-type"), "application/problem+json");
        ok((await missing.json()).detail.includes("/assets/nope.js"));
        const post = await fetch(`${origin}/`, { method: "POST" });
        equal(post.status, 400);
        equal(post.headers.get("allow"), "GET, HEAD");
        await post.body?.cancel();
      },
    );

    browser = await launchChromium();
    const open = async () => {
      const context = await browser!.newContext({ viewport: { width: 1280, height: 720 } });
      contexts.push(context);
      const page = await context.newPage();
      return { context, page, seen: watch(page) };
    };

    const viewer = await open();
    await step("a viewer signs in and the overview shows three members and the leader", async () => {
      const startedAt = performance.now();
      await signIn(viewer.page, origin, viewerToken);
      const rows = viewer.page.locator('[data-testid="members"] tbody tr');
      await rows.nth(2).waitFor();
      const liveMs = Math.round(performance.now() - startedAt);
      equal(await rows.count(), 3);
      await screenshot(viewer.page, "overview-first");
      // The leader may have moved since the cluster started (the deploy's load): the one the nodes name now.
      await cluster.waitFor("the page to mark the leader the nodes name", async () => {
        const now = (await served.json<{ leader: string | null }>("/api/v1/health")).body.leader;
        const marked = viewer.page.locator(`[data-testid="members"] tr[data-node="${now}"] .tag.leader`);
        return now !== null && await marked.count() === 1;
      }, 5_000);
      await viewer.page.getByTestId("health").getByText("Healthy").waitFor();
      console.log(
        `  first page: ${viewer.seen.scriptBytes} B of JavaScript transferred (gzip); live overview ` +
          `${liveMs} ms after navigation (sign-in included)`,
      );
      ok(viewer.seen.scriptBytes > 0 && viewer.seen.scriptBytes < 100 * 1024, `${viewer.seen.scriptBytes} B`);
      await screenshot(viewer.page, "overview");
      const problems = await accessibilityProblems(viewer.page);
      equal(problems.length, 0, problems.join("\n"));
    });

    await step(
      "the viewer sees every slice and no action button; the token survives a reload only",
      async () => {
        await viewer.page.getByRole("link", { name: "Slices" }).click();
        for (const slice of SLICES) await viewer.page.locator(`[data-slice="${slice}"]`).waitFor();
        equal(await viewer.page.getByRole("button", { name: "Scale" }).count(), 0);
        equal(await viewer.page.getByRole("button", { name: /Undeploy/ }).count(), 0);
        equal(await viewer.page.getByRole("button", { name: "Deploy" }).count(), 0);
        await screenshot(viewer.page, "slices-viewer");
        const problems = await accessibilityProblems(viewer.page);
        equal(problems.length, 0, problems.join("\n"));
        for (const name of ["Invocations", "Alerts", "Deployments", "Controller", "Data", "Logs", "Access"]) {
          await viewer.page.getByRole("link", { name }).click();
          await viewer.page.locator("h1", { hasText: name }).waitFor();
          await viewer.page.waitForLoadState("networkidle").catch(() => {});
          await screenshot(viewer.page, name.toLowerCase());
          const found = await accessibilityProblems(viewer.page);
          equal(found.length, 0, `${name}: ${found.join("\n")}`);
        }
        equal(await viewer.page.getByRole("button", { name: "Put" }).count(), 0, "no KV edit for a viewer");
        // What the page hides, the API refuses: the viewer's token cannot scale (through the browser's context,
        // outside the page so that the refusal is not a console error).
        const refused = await viewer.context.request.post(`${origin}/api/v1/scale`, {
          headers: { authorization: `Bearer ${viewerToken}` },
          data: { artifact: "org.example:inventory", instances: 1 },
        });
        equal(refused.status(), 403);
        ok((await refused.json()).detail.includes("needs role operator"));
        equal(
          await viewer.page.evaluate(() => sessionStorage.getItem("aether.token")),
          viewerToken,
          "the token is in sessionStorage",
        );
        // A reload in the same tab signs in again from sessionStorage: navigation to a live overview, measured.
        await viewer.page.getByRole("link", { name: "Overview" }).click();
        const reloadAt = performance.now();
        await viewer.page.reload();
        await viewer.page.locator('[data-testid="members"] tbody tr').nth(2).waitFor();
        const liveMs = Math.round(performance.now() - reloadAt);
        const paintMs = await viewer.page.evaluate(() =>
          Math.round(performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? -1)
        );
        console.log(
          `  reload: first contentful paint ${paintMs} ms, live overview ${liveMs} ms after navigation`,
        );
        ok(liveMs < 5_000, `live overview ${liveMs} ms after a reload`);
        const other = await open();
        await other.page.goto(`${origin}/`);
        await other.page.getByLabel("Token").waitFor();
        equal(await other.page.getByTestId("who").count(), 0, "a new tab (another session) is signed out");
      },
    );

    const operator = await open();
    await step("an operator scales a slice from the Slices page and the cluster follows", async () => {
      // Signed in with the keyboard only: the first Tab stop is the skip link, the form submits on Enter.
      await operator.page.goto(`${origin}/`);
      await operator.page.keyboard.press("Tab");
      equal(await operator.page.evaluate("document.activeElement.textContent"), "Skip to content");
      await operator.page.getByLabel("Token").focus();
      await operator.page.keyboard.type(operatorToken);
      await operator.page.keyboard.press("Enter");
      await operator.page.getByTestId("who").getByText("(operator)").waitFor();
      await operator.page.getByRole("link", { name: "Slices" }).click();
      const card = operator.page.locator('[data-slice="org.example:inventory"]');
      await card.getByLabel("Instances").fill("2");
      await card.getByRole("button", { name: "Scale" }).click();
      await card.getByText("org.example:inventory scaled to 2").waitFor();
      await cluster.waitFor("inventory at 2 instances in the cluster", async () => {
        const slices = await sliceStatuses(cluster.nodes[0]);
        const inventory = slices.find((s) => s.slice === "org.example:inventory");
        return inventory?.desired === 2 && inventory.instances.length === 2 && inventory.active === 2;
      });
      await card.getByTestId("counts").getByText("2/2 active").waitFor({ timeout: 10_000 });
      await screenshot(operator.page, "slices-operator");
    });

    await step("an alert rule added on the Alerts page fires under load and shows as firing", async () => {
      const doc = await (await fetch(`${origin}/api/v1/openapi.json`)).json().catch(() => null);
      if (doc?.paths?.["/api/v1/alerts/rules/{name}"]?.put === undefined) {
        // Alerts are issue 16's (built alongside the dashboard): until a node serves them, the page says so.
        console.log("  SKIPPED: this build's nodes serve no alert rules (GET /api/v1/openapi.json)");
        return;
      }
      await operator.page.getByRole("link", { name: "Alerts" }).click();
      await operator.page.getByLabel("Name").fill("dash-orders-slow");
      // Any placed order takes longer than 0.001 ms: the rule fires as soon as orders flow.
      await operator.page.getByLabel("Expression").fill(
        "p50 of org.example:place-order/placeOrder > 0.001ms",
      );
      await operator.page.getByLabel("For").fill("0s");
      await operator.page.getByRole("button", { name: "Add rule" }).click();
      await operator.page.getByText("saved dash-orders-slow").waitFor();
      await operator.page.locator('[data-testid="rules"]').getByText("dash-orders-slow").waitFor();
      const firing = viewer.page.locator('[data-testid="alerts"] tr[data-state="firing"]', {
        hasText: "dash-orders-slow",
      });
      const stopAt = Date.now() + 20_000;
      const load = (async () => {
        while (Date.now() < stopAt && await firing.count() === 0) {
          const response = await fetch(`${served.httpUrl}/api/v1/orders`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(ORDER),
          }).catch(() => null);
          await response?.body?.cancel();
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      await viewer.page.getByRole("link", { name: "Alerts" }).click();
      await firing.waitFor({ timeout: 20_000 });
      await load;
      await viewer.page.getByRole("link", { name: "Overview" }).click();
      await viewer.page.getByTestId("alerts-firing").getByText("dash-orders-slow").waitFor();
      await screenshot(viewer.page, "alerts-firing");
      await operator.page.getByRole("button", { name: "Delete dash-orders-slow" }).click();
      await operator.page.locator('[data-testid="rules"]', { hasText: "dash-orders-slow" }).waitFor({
        state: "detached",
      });
    });

    await step(
      "kill -9 of a member: the overview shows it down within 3 s and the feed says so",
      async () => {
        await viewer.page.getByRole("link", { name: "Overview" }).click();
        await viewer.page.locator(
          `[data-testid="members"] tr[data-node="${victim.id}"][data-connected="true"]`,
        )
          .waitFor();
        // Live over the status WebSocket, and then no polling: in a quiet spell the page asks nothing.
        await viewer.page.getByTestId("live-mode").getByText("live").waitFor({ timeout: 5_000 });
        const feedBefore = await viewer.page.locator('[data-testid="feed"] li').count();
        const asksBefore = viewer.seen.requests.length;
        await new Promise((r) => setTimeout(r, 3_000));
        const asked = viewer.seen.requests.slice(asksBefore).filter((u) =>
          /\/api\/v1\/(status|slices)/.test(u)
        );
        if (await viewer.page.locator('[data-testid="feed"] li').count() === feedBefore) {
          equal(asked.length, 0, `polled while the socket was up: ${asked.join(", ")}`);
        } else console.log(`  (events arrived in the quiet spell; ${asked.length} reads they caused)`);
        const killedAt = performance.now();
        await victim.kill();
        await viewer.page.locator(
          `[data-testid="members"] tr[data-node="${victim.id}"][data-connected="false"]`,
        )
          .waitFor({ timeout: 3_000 });
        const shownMs = Math.round(performance.now() - killedAt);
        await viewer.page.getByTestId("feed").getByText(`node ${victim.id} is down`).waitFor({
          timeout: 3_000,
        });
        console.log(`  member ${victim.id} shown down ${shownMs} ms after kill -9`);
        await screenshot(viewer.page, "overview-node-down");
      },
    );

    await step("at phone width in the dark scheme every page fits the screen and passes axe", async () => {
      const context = await browser!.newContext({
        viewport: { width: 390, height: 844 },
        colorScheme: "dark",
      });
      contexts.push(context);
      const page = await context.newPage();
      const phone = watch(page);
      await signIn(page, origin, viewerToken);
      for (const name of ["Overview", "Slices", "Invocations", "Alerts", "Deployments", "Data", "Logs"]) {
        await page.getByRole("link", { name }).click();
        await page.locator("h1", { hasText: name }).waitFor();
        await page.waitForLoadState("networkidle").catch(() => {});
        const overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth") as number;
        ok(overflow <= 0, `${name}: the page is ${overflow} px wider than a 390 px screen`);
        await screenshot(page, `phone-dark-${name.toLowerCase()}`);
        const problems = await accessibilityProblems(page);
        equal(problems.length, 0, `${name} (phone, dark): ${problems.join("\n")}`);
      }
      equal(phone.consoleErrors.length, 0, `console errors:\n${phone.consoleErrors.join("\n")}`);
    });

    await step("no request left the node's origin and the console stayed clean", () => {
      for (const page of [viewer, operator]) {
        const outside = page.seen.requests.filter((url) =>
          !url.startsWith(`${origin}/`) && !url.startsWith("data:")
        );
        equal(outside.length, 0, `requests outside ${origin}: ${outside.join(", ")}`);
        equal(page.seen.consoleErrors.length, 0, `console errors:\n${page.seen.consoleErrors.join("\n")}`);
      }
      console.log(`  screenshots in ${ARTIFACTS}`);
      return Promise.resolve();
    });
  } finally {
    for (const context of contexts) await context.close().catch(() => {});
    await browser?.close().catch(() => {});
    await cluster.close();
    await Deno.remove(distDir, { recursive: true }).catch(() => {});
  }
});
