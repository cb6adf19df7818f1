import { equal, match, ok, rejects } from "node:assert/strict";
import { DASHBOARD_CSP, dashboardResponse, isDashboardPath, readDashboardAssets } from "./dashboard.ts";

async function builtDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "aether-dashboard-unit-" });
  await Deno.mkdir(`${dir}/assets`);
  await Deno.writeTextFile(`${dir}/index.html`, `<!doctype html><p>${"shell ".repeat(200)}</p>`);
  await Deno.writeTextFile(`${dir}/forge.html`, "<!doctype html><p>forge</p>");
  await Deno.writeTextFile(
    `${dir}/assets/app.0123456789ab.js`,
    `console.log(${JSON.stringify("x".repeat(2000))});`,
  );
  return dir;
}

const get = (path: string, headers: Record<string, string> = {}) =>
  new Request(`http://127.0.0.1${path}`, { headers });

Deno.test("dashboard files: the shell revalidates, hashed assets are immutable, gzip when accepted, 304 when current", async () => {
  const dir = await builtDir();
  try {
    const assets = await readDashboardAssets(dir);
    const shell = dashboardResponse(assets, get("/"));
    equal(shell.status, 200);
    equal(shell.headers.get("cache-control"), "no-cache");
    equal(shell.headers.get("content-security-policy"), DASHBOARD_CSP);
    equal(shell.headers.get("content-encoding"), null);
    match(await shell.text(), /shell/);
    const zipped = dashboardResponse(assets, get("/index.html", { "accept-encoding": "br, gzip;q=0.8" }));
    equal(zipped.headers.get("content-encoding"), "gzip");
    const unzipped = await new Response(zipped.body!.pipeThrough(new DecompressionStream("gzip"))).text();
    match(unzipped, /shell/);
    const refused = dashboardResponse(assets, get("/", { "accept-encoding": "gzip;q=0" }));
    equal(refused.headers.get("content-encoding"), null);
    await refused.body?.cancel();
    const etag = shell.headers.get("etag")!;
    equal(dashboardResponse(assets, get("/", { "if-none-match": `W/${etag}` })).status, 304);
    const script = dashboardResponse(assets, get("/assets/app.0123456789ab.js"));
    equal(script.headers.get("cache-control"), "public, max-age=31536000, immutable");
    equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
    await script.body?.cancel();
    const head = dashboardResponse(assets, new Request("http://127.0.0.1/", { method: "HEAD" }));
    equal(head.status, 200);
    equal(head.body, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dashboard files: unknown file 404 and other methods 400 name what was asked; Forge's page at /", async () => {
  const dir = await builtDir();
  try {
    const assets = await readDashboardAssets(dir);
    const missing = dashboardResponse(assets, get("/assets/nope.js"));
    equal(missing.status, 404);
    equal(missing.headers.get("content-type"), "application/problem+json");
    match((await missing.json()).detail, /\/assets\/nope\.js/);
    const post = dashboardResponse(assets, new Request("http://127.0.0.1/", { method: "POST" }));
    equal(post.status, 400);
    equal(post.headers.get("allow"), "GET, HEAD");
    match((await post.json()).detail, /POST \//);
    const forge = await readDashboardAssets(dir, "forge.html");
    match(await dashboardResponse(forge, get("/")).text(), /forge/);
    ok(isDashboardPath("/") && isDashboardPath("/assets/x.js") && !isDashboardPath("/api/v1/status"));
    ok(!isDashboardPath("/metrics"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dashboard files: a missing build is an error naming the file and the command; / then answers 503", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aether-dashboard-none-" });
  try {
    const error = await readDashboardAssets(dir).catch((e) => e as Error);
    ok(error instanceof Error);
    match(error.message, /index\.html is missing \(run: npx -y deno@2\.9\.6 task dashboard:build\)/);
    const answer = dashboardResponse(error, get("/"));
    equal(answer.status, 503);
    match((await answer.json()).detail, /dashboard:build/);
    await rejects(readDashboardAssets(`${dir}/nowhere`), /is missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
