/**
 * A real Forge for end-to-end tests, run the way a user runs it: the `aether` command in a working directory
 * of its own (Forge keeps its data in `./.forge/` of the directory it starts in), stopped with Ctrl-C
 * (SIGINT) and, if it does not stop, killed.
 */

import { fileURLToPath } from "node:url";
import type { ForgeAddresses } from "./_docs.ts";
import { installedLauncher, shellQuote } from "../../tools/launcher.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * A directory with an `aether` command in it: the launcher `deno task install` writes (tools/launcher.ts), for
 * this checkout and the Deno running the test, so the docs run with the installed command's per-command
 * permissions. `AETHER_BIN` (the path of another `aether`, e.g. a compiled dist/aether) replaces it.
 */
export async function aetherBinDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "aether-bin-" });
  const installed = Deno.env.get("AETHER_BIN");
  const script = installed
    ? `#!/bin/sh\nexec ${shellQuote(installed)} "$@"\n`
    : installedLauncher({ deno: Deno.execPath(), root: ROOT.replace(/\/$/, "") });
  await Deno.writeTextFile(`${dir}/aether`, script, { mode: 0o755 });
  return dir;
}

/** Symlinks the checkout's `examples/` into `dir`, so the docs' relative paths work there too. */
export async function linkExamples(dir: string): Promise<void> {
  await Deno.symlink(`${ROOT}examples`, `${dir}/examples`);
}

export interface RunningForge extends ForgeAddresses {
  /** Everything Forge printed so far. */
  output(): string;
  stop(): Promise<void>;
}

interface ForgeJson {
  nodes?: { api?: string; app?: string }[];
}

/** forge.json names the management API as `--connect` takes it (`127.0.0.1:8081`), the app port as a URL. */
function withScheme(address: string): string {
  return /^https?:\/\//.test(address) ? address : `http://${address}`;
}

/** The nodes' addresses from `.forge/forge.json`, or null while it is missing or incomplete. */
async function readForgeJson(cwd: string, count: number): Promise<ForgeAddresses | null> {
  try {
    const json = JSON.parse(await Deno.readTextFile(`${cwd}/.forge/forge.json`)) as ForgeJson;
    const nodes = json.nodes ?? [];
    if (nodes.length < count || nodes.some((n) => !n.api || !n.app)) return null;
    return { api: nodes.map((n) => withScheme(n.api!)), app: nodes.map((n) => withScheme(n.app!)) };
  } catch {
    return null;
  }
}

/** The banner's node rows (`n1  cluster 7101  api http://…  app http://…`), printed once Forge is ready. */
function bannerAddresses(output: string, count: number): ForgeAddresses | null {
  const rows = [...output.matchAll(/^\s*n\d+\s.*?api\s+(http:\/\/\S+)\s+app\s+(http:\/\/\S+)/gm)];
  if (rows.length < count) return null;
  const last = rows.slice(-count);
  return { api: last.map((r) => r[1]), app: last.map((r) => r[2]) };
}

/** At least `minSlices` slices in the node's view, every one at its desired count and settled. */
async function settled(api: string, minSlices: number, cwd: string): Promise<boolean> {
  try {
    const token = (await Deno.readTextFile(`${cwd}/.forge/admin-token`)).trim();
    const response = await fetch(`${api}/api/v1/slices`, { headers: { authorization: `Bearer ${token}` } });
    if (!response.ok) return (await response.body?.cancel(), false);
    const { slices } = await response.json() as { slices: { settled: boolean }[] };
    return slices.length >= minSlices && slices.every((s) => s.settled);
  } catch {
    return false;
  }
}

/**
 * Starts `aether forge <args>` in `cwd` and waits until it printed its banner (the example, if any, is then
 * deployed) and every slice is settled. The nodes' addresses come from `.forge/forge.json` when Forge writes
 * one, else from the banner.
 */
export async function startForge(
  options: {
    cwd: string;
    binDir: string;
    args: string[];
    nodes: number;
    /** Slices the example deploys (0 for `--no-example`). */
    minSlices: number;
    timeoutMs: number;
  },
): Promise<RunningForge> {
  const child = new Deno.Command(`${options.binDir}/aether`, {
    args: ["forge", ...options.args],
    cwd: options.cwd,
    env: { NO_COLOR: "1" },
    // Piped and held open: a Forge that watches its standard input stops if this test process dies.
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  const stop = async () => {
    if (!exited) {
      child.kill("SIGINT");
      const timer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, 20_000);
      await status;
      clearTimeout(timer);
    }
    await child.stdin.close().catch(() => {});
    await pumped;
  };
  const deadline = Date.now() + options.timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (exited) throw new Error(`forge exited before it was ready:\n${output}`);
      const banner = bannerAddresses(output, options.nodes);
      if (banner) {
        const addresses = (await readForgeJson(options.cwd, options.nodes)) ?? banner;
        if (await settled(addresses.api[0], options.minSlices, options.cwd)) {
          return { ...addresses, output: () => output, stop };
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`forge was not ready within ${options.timeoutMs} ms:\n${output}`);
  } catch (e) {
    await stop();
    throw e;
  }
}
