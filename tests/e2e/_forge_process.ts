/**
 * Forge as a real process for the chaos tests: `runtime/main.ts forge ...` started in a temporary working
 * directory of its own (Forge keeps `.forge/` in its working directory; the examples come from the checkout),
 * with its standard input piped (so it stops if the test runner dies), its output collected, and every process
 * it started killed at the end even if it did not stop by itself. `aether forge <command>` runs as its own
 * process too, exactly as a user runs it.
 */

const ROOT = new URL("../..", import.meta.url).pathname;
const MAIN = `${ROOT}runtime/main.ts`;

import type { ForgeNodeState, ForgeState } from "../../runtime/forge/mod.ts";

export type ForgeNode = ForgeNodeState;
export type ForgeJson = ForgeState;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ForgeProcess {
  #output = "";
  #exited: Promise<Deno.CommandStatus>;
  #done = false;
  /** Every node pid Forge ever reported, so none survives the test. */
  readonly #nodePids = new Set<number>();

  private constructor(readonly cwd: string, readonly child: Deno.ChildProcess) {
    const decoder = new TextDecoder();
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) this.#output += decoder.decode(chunk, { stream: true });
    };
    void pump(child.stdout).catch(() => {});
    void pump(child.stderr).catch(() => {});
    this.#exited = child.status.then((s) => (this.#done = true, s));
  }

  /**
   * Starts Forge in `dir` (default: a new temporary directory) and waits for its banner (the example deployed); returns the
   * process and how long that took.
   */
  static async start(
    args: string[],
    timeoutMs = 120_000,
    dir?: string,
  ): Promise<{ forge: ForgeProcess; startMs: number }> {
    const cwd = dir ?? await Deno.makeTempDir({ prefix: "aether-forge-e2e-" });
    const startedAt = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", `${ROOT}deno.json`, MAIN, "forge", ...args],
      cwd,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const forge = new ForgeProcess(cwd, child);
    try {
      await forge.waitForOutput(/Ctrl-C or aether forge stop stops every node/, timeoutMs);
    } catch (e) {
      await forge.close();
      throw e;
    }
    return { forge, startMs: performance.now() - startedAt };
  }

  get output(): string {
    return this.#output;
  }

  get exited(): boolean {
    return this.#done;
  }

  get status(): Promise<Deno.CommandStatus> {
    return this.#exited;
  }

  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.#output)) {
      if (this.#done) throw new Error(`forge exited before printing ${pattern}:\n${this.#output}`);
      if (Date.now() > deadline) {
        throw new Error(`forge did not print ${pattern} in ${timeoutMs} ms:\n${this.#output}`);
      }
      await sleep(100);
    }
  }

  /** `.forge/forge.json` as Forge last wrote it. */
  async state(): Promise<ForgeJson> {
    const state = JSON.parse(await Deno.readTextFile(`${this.cwd}/.forge/forge.json`)) as ForgeJson;
    for (const n of state.nodes) if (n.pid) this.#nodePids.add(n.pid);
    return state;
  }

  /** `aether forge <args>` run as its own process in Forge's directory. */
  async command(...args: string[]): Promise<CommandResult> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", `${ROOT}deno.json`, MAIN, "forge", ...args],
      cwd: this.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const decoder = new TextDecoder();
    return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
  }

  /** Polls until `check` gives a truthy value. */
  async waitFor<T>(
    what: string,
    check: () => Promise<T | null | undefined | false>,
    timeoutMs = 30_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown = null;
    while (Date.now() < deadline) {
      try {
        const value = await check();
        if (value) return value;
      } catch (e) {
        last = e;
      }
      await sleep(100);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
  }

  /** Stops Forge (SIGTERM, SIGKILL after 20 s), kills any node it left, removes the directory (unless kept). */
  async close(options: { keepDir?: boolean } = {}): Promise<void> {
    await this.state().catch(() => {});
    if (!this.#done) {
      try {
        this.child.kill("SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          this.child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 20_000);
      await this.#exited;
      clearTimeout(timer);
    }
    await this.child.stdin.close().catch(() => {});
    for (const pid of this.#nodePids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* already gone, as it should be */ }
    }
    if (!options.keepDir) await Deno.remove(this.cwd, { recursive: true }).catch(() => {});
  }

  /** Whether a process with this pid exists. */
  static alive(pid: number): boolean {
    try {
      Deno.statSync(`/proc/${pid}`);
      return true;
    } catch {
      return false;
    }
  }
}

/** The Authorization header of the Forge in `cwd` (its `.forge/admin-token`, as the CLI finds it). */
export function forgeAuth(cwd: string): Record<string, string> {
  return { authorization: `Bearer ${Deno.readTextFileSync(`${cwd}/.forge/admin-token`).trim()}` };
}

export interface Health {
  status: string;
  quorum: boolean;
  leader: string | null;
  members: { id: string; connected: boolean }[];
}

export async function health(api: string): Promise<{ status: number; body: Health } | null> {
  try {
    const response = await fetch(`http://${api}/api/v1/health`, { signal: AbortSignal.timeout(3_000) });
    return { status: response.status, body: await response.json() as Health };
  } catch {
    return null;
  }
}

/** The leader every node names while all are healthy, else null. */
export async function agreedLeader(state: ForgeJson): Promise<string | null> {
  const all = await Promise.all(state.nodes.map((n) => health(n.api)));
  const leader = all[0]?.body.leader;
  return leader && all.every((h) => h?.status === 200 && h.body.leader === leader) ? leader : null;
}

interface SliceView {
  slice: string;
  settled: boolean;
  desired: number;
  instances: { node: string; state: string; connected: boolean }[];
}

/**
 * Every node sees every slice settled, with `perNode` ACTIVE instances of the application's slices on every
 * node (the infrastructure services the application requires run beside them, one instance per node, and are
 * not counted).
 */
export async function evenlySpread(
  state: ForgeJson,
  perNode: number,
  auth: Record<string, string>,
): Promise<boolean> {
  const views = await Promise.all(state.nodes.map(async (n) => {
    const response = await fetch(`http://${n.api}/api/v1/slices`, {
      headers: auth,
      signal: AbortSignal.timeout(3_000),
    });
    return (await response.json() as { slices: SliceView[] }).slices;
  }));
  return views.every((slices) =>
    slices.length > 0 && slices.every((s) => s.settled) &&
    state.nodes.every((n) =>
      slices.filter((s) => !s.slice.startsWith("aether.infra:")).flatMap((s) => s.instances)
        .filter((i) => i.node === n.id && i.state === "ACTIVE" && i.connected)
        .length === perNode
    )
  );
}
