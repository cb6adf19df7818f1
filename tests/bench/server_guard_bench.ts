/**
 * What the HTTP listeners' guard (runtime/node/server_guard.ts: header, body and idle timeouts and a
 * connection limit, by an accept loop that relays to Deno.serve) costs against plain Deno.serve, on a
 * hello-world handler, with wrk -t1 -c50 in alternating rounds.
 *
 *   deno run -A tests/bench/server_guard_bench.ts [--rounds 3] [--seconds 4]
 *
 * Needs wrk on PATH. Both servers run in this process (only the one being measured gets traffic).
 */

import { parseArgs } from "node:util";
import { createLogger } from "../../runtime/core/mod.ts";
import { DEFAULT_SERVER_LIMITS, serveGuarded } from "../../runtime/node/server_guard.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string" }, seconds: { type: "string" } },
});
const ROUNDS = Number(values.rounds ?? 3);
const SECONDS = Number(values.seconds ?? 4);

const handler = () => new Response("hello");
const raw = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
const log = createLogger({ name: "bench", level: "error" });
const guarded = serveGuarded(
  { name: "bench", hostname: "127.0.0.1", port: 0, limits: DEFAULT_SERVER_LIMITS, log },
  handler,
);

async function wrk(port: number, seconds: number): Promise<number> {
  const output = await new Deno.Command("wrk", {
    args: ["-t1", "-c50", `-d${seconds}s`, `http://127.0.0.1:${port}/`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const match = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!match) throw new Error(`wrk failed: ${text}${new TextDecoder().decode(output.stderr)}`);
  return Number(match[1]);
}

try {
  await wrk(raw.addr.port, 1); // warm-up
  await wrk(guarded.addr.port, 1);
  console.log("| round | Deno.serve req/s | guarded req/s | guarded / raw |\n| --- | --- | --- | --- |");
  for (let round = 1; round <= ROUNDS; round++) {
    const plain = await wrk(raw.addr.port, SECONDS);
    const withGuard = await wrk(guarded.addr.port, SECONDS);
    console.log(
      `| ${round} | ${plain.toFixed(0)} | ${withGuard.toFixed(0)} | ${(withGuard / plain).toFixed(2)} |`,
    );
  }
} finally {
  await guarded.shutdown();
  await raw.shutdown();
}
