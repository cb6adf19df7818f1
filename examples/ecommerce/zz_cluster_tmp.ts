// Temporary: deploy the example on a real 3-node cluster with the README's commands, then load it.
import { TestCluster } from "../../tests/_support/cluster.ts";
import { formatReport, runLoad, formatProgress } from "../../runtime/forge/load.ts";
const MAIN = new URL("../../runtime/main.ts", import.meta.url).pathname;
async function cli(args: string[]) {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-run", MAIN, "--", ...args], stdin: "null", stdout: "piped", stderr: "piped", env: { NO_COLOR: "1" } }).output();
  const d = (b: Uint8Array) => new TextDecoder().decode(b);
  console.log(`$ aether ${args.join(" ")}  [${out.code}, ${Math.round(performance.now() - t)} ms]\n${d(out.stdout)}${d(out.stderr)}`);
  return out.code;
}
const cluster = await TestCluster.start(3);
const dist = await Deno.makeTempDir();
try {
  await cluster.waitForLeader(60_000);
  const connect = ["--connect", cluster.nodes[0].apiUrl.replace("http://", "")];
  for (const s of ["place-order", "inventory", "pricing", "payment", "fulfillment"]) {
    await cli(["slice", "build", `examples/ecommerce/${s}/slice.ts`, "--out", dist]);
    await cli([...connect, "artifact", "push", `${dist}/${s}-1.0.0.manifest.json`]);
  }
  const t = performance.now();
  await cli([...connect, "blueprint", "apply", "examples/ecommerce/blueprint.toml", "--wait"]);
  console.log(`apply --wait took ${Math.round(performance.now() - t)} ms`);
  await cli([...connect, "slices"]);
  const urls = cluster.nodes.map((n) => n.httpUrl);
  console.log("app urls", urls);
  const r = await fetch(`${urls[1]}/api/v1/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ customerId: "CUST-1001", email: "ada@example.com", items: [{ productId: "LAPTOP-PRO", quantity: 1 }], shippingAddress: { name: "Ada", street: "1 Main St", city: "Springfield", postalCode: "62701", country: "US", region: "IL" }, paymentMethod: { cardNumber: "4242424242424242", expiryMonth: 12, expiryYear: 2030, cvv: "123", holderName: "Ada" } }) });
  console.log(r.status, r.headers.get("location"), (await r.text()).slice(0, 200));
  const body = await Deno.readTextFile("examples/ecommerce/load-order.json.tmpl");
  const report = await runLoad({ target: "POST /api/v1/orders", urls, ratePerSecond: Number(Deno.args[0] ?? 200), durationMs: Number(Deno.args[1] ?? 10) * 1000, body, onProgress: (p) => console.log(formatProgress(p)) });
  console.log(formatReport(report));
} finally {
  await cluster.close();
  await Deno.remove(dist, { recursive: true });
}
