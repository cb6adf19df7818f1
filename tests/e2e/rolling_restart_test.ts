/**
 * `aether cluster rolling-restart` under Forge (the ecommerce example on 3 nodes), with a steady load of about
 * 200 GET requests per second on the inventory through the nodes' app ports:
 *
 * - every node is drained, restarted by Forge's supervisor, rejoins and is uncordoned, one at a time, the
 *   leader last; the command exits 0 and Forge counts one restart per node;
 * - no request gets an error answer. A client of a node that is restarting finds its port closed for a
 *   moment: like a load balancer with health checks, the load sends such a request to the next node
 *   (counted and printed as `retried`); a request that got an answer other than 200 is a failure.
 *
 *   deno test -A --unstable-worker-options tests/e2e/rolling_restart_test.ts
 */

import { deepStrictEqual, equal, match } from "node:assert/strict";
import { ForgeProcess } from "./_forge_process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = `${ROOT}runtime/main.ts`;

class Load {
  readonly failures: string[] = [];
  done = 0;
  retried = 0;
  #sent = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(private readonly apps: string[]) {}

  start(): void {
    this.#timer = setInterval(() => {
      const p = this.#one(this.#sent++).finally(() => this.#inFlight.delete(p));
      this.#inFlight.add(p);
    }, 5);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
  }

  async #one(k: number): Promise<void> {
    for (let attempt = 0; attempt < this.apps.length; attempt++) {
      const app = this.apps[(k + attempt) % this.apps.length];
      let response: Response;
      try {
        response = await fetch(`${app}/api/v1/inventory/LAPTOP-PRO`, { signal: AbortSignal.timeout(10_000) });
      } catch {
        this.retried++;
        continue; // no answer from this node (it is restarting): the next node, as a load balancer would
      }
      const text = await response.text();
      this.done++;
      if (response.status !== 200) this.failures.push(`${app}: ${response.status} ${text.slice(0, 200)}`);
      return;
    }
    this.done++;
    this.failures.push("no node answered");
  }
}

Deno.test("cluster rolling-restart under Forge: every node restarted in turn, no failed request", async () => {
  const { forge } = await ForgeProcess.start(["--clean", "--free-ports"]);
  let load: Load | undefined;
  try {
    const state = await forge.state();
    load = new Load(state.nodes.map((n) => n.app));
    load.start();
    await new Promise((r) => setTimeout(r, 1_000));
    const startedAt = Date.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${ROOT}deno.json`,
        MAIN,
        "cluster",
        "rolling-restart",
        "--timeout-ms",
        "120000",
      ],
      cwd: forge.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const tookMs = Date.now() - startedAt;
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    await load.stop();
    equal(out.code, 0, `${stdout}\n${stderr}\n${forge.output.slice(-8_000)}`);
    match(stdout, /rolling restart done: /);
    const after = await forge.state();
    deepStrictEqual(after.nodes.map((n) => n.restarts), [1, 1, 1], "each node restarted once");
    console.log(stdout.trim().split("\n").map((l) => `  ${l}`).join("\n"));
    console.log(
      `  rolling restart of 3 nodes: ${tookMs} ms; ${load.done} requests, ${load.failures.length} failed, ` +
        `${load.retried} sent again to another node (port closed while its node restarted)`,
    );
    deepStrictEqual(load.failures.slice(0, 10), [], "no request got an error answer");
  } finally {
    await load?.stop();
    await forge.close();
  }
});
