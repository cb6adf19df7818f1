/**
 * The single-file `aether` (`deno task compile`, tools/compile.ts), built into a temporary directory and run from
 * a copy outside the checkout (a damaged copy is refused by its checksum), with a PATH that holds only the POSIX
 * tools its first run uses (no deno, npx or node), an empty Deno cache and an npm registry that cannot be
 * reached: `aether node` starts a member, a slice deployed to it through the file's own CLI serves requests, and
 * still cannot read a file outside its grant (the node's secret file, which the node itself reads); `aether
 * status` reports the member; `aether forge --no-example` starts a local cluster and stops cleanly on SIGINT. No
 * process started here outlives the test.
 */

import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { testAdminToken } from "../_support/cluster.ts";
import { buildSlice, writeBuiltSlice } from "../../runtime/authoring/mod.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const ESCAPE_FIXTURE = fileURLToPath(new URL("../fixtures/compile/escape.ts", import.meta.url));
/** What the file's first run calls (sh itself comes from its #! line). */
const FIRST_RUN_TOOLS = ["tail", "sha256sum", "cut", "mkdir", "mktemp", "tar", "gzip", "mv", "rm"];

interface Spawned {
  readonly child: Deno.ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in standard output; rejects after timeoutMs or at exit. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
}

function spawn(file: string, args: string[], options: { cwd: string; env: Record<string, string> }): Spawned {
  const child = new Deno.Command(file, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  let exited = false;
  const pump = async (stream: ReadableStream<Uint8Array>, add: (text: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) add(text);
  };
  pump(child.stdout, (t) => out += t);
  pump(child.stderr, (t) => err = (err + t).slice(-32_000));
  child.status.then(() => exited = true);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    async waitFor(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = out.match(pattern);
        if (found) return found;
        if (exited) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(
        `no ${pattern} in ${file} ${args.join(" ")}${exited ? " (it exited)" : ""}:\n${out}\n${err}`,
      );
    },
  };
}

/** Pids of live processes whose command line mentions `text` (the test's cache directory holds their Deno). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(text)) pids.push(Number(entry.name));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(spawned: Spawned, signal: Deno.Signal): Promise<Deno.CommandStatus> {
  try {
    spawned.child.kill(signal);
  } catch {
    // Already gone.
  }
  const timer = setTimeout(() => {
    try {
      spawned.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, 20_000);
  try {
    await spawned.child.stdin.close().catch(() => {});
    return await spawned.child.status;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "compiled aether: one file runs node (slices sandboxed as before), status and forge, with no network",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "aether-compile-test-" });
    const cache = join(tmp, "cache");
    const started: Spawned[] = [];
    try {
      // Build into one directory, run a copy from another (outside the checkout).
      const built = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(ROOT, "tools", "compile.ts"), "--output", join(tmp, "build", "aether")],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const buildOutput = new TextDecoder().decode(built.stdout) + new TextDecoder().decode(built.stderr);
      ok(built.success, buildOutput);
      match(buildOutput, /Built .*aether \(\d+\.\d MiB/);
      await Deno.mkdir(join(tmp, "bin"));
      const aether = join(tmp, "bin", "aether");
      await Deno.copyFile(join(tmp, "build", "aether"), aether);
      await Deno.chmod(aether, 0o755);

      const pathDir = join(tmp, "path");
      await Deno.mkdir(pathDir);
      for (const tool of FIRST_RUN_TOOLS) await Deno.symlink(`/usr/bin/${tool}`, join(pathDir, tool));
      const work = join(tmp, "work");
      await Deno.mkdir(work);
      const env = {
        PATH: pathDir,
        HOME: tmp,
        AETHER_CACHE_DIR: cache,
        DENO_DIR: join(tmp, "deno-dir"),
        NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
        NO_COLOR: "1",
      };
      const cli = async (args: string[]) => {
        const out = await new Deno.Command(aether, { args, cwd: work, env, clearEnv: true, stdin: "null" })
          .output();
        const decode = (b: Uint8Array) => new TextDecoder().decode(b);
        return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
      };

      // The first run extracts the archive (checked against its sha256) into the cache.
      const firstStarted = performance.now();
      const help = await cli(["--help"]);
      const firstMs = performance.now() - firstStarted;
      equal(help.code, 0, help.stderr);
      match(help.stdout, /usage: aether/);
      const laterStarted = performance.now();
      equal((await cli(["--help"])).code, 0);
      const size = (await Deno.stat(aether)).size;
      console.log(
        `dist/aether ${(size / 1024 / 1024).toFixed(1)} MiB; first run (check, extract, empty Deno cache) ` +
          `${firstMs.toFixed(0)} ms; second run ${(performance.now() - laterStarted).toFixed(0)} ms`,
      );
      const [extracted] = [...Deno.readDirSync(cache)].filter((e) => !e.name.startsWith("."));
      ok(extracted, "the runtime was extracted into the cache");
      await Deno.stat(join(cache, extracted.name, ".complete"));

      // A damaged copy is refused before anything is extracted or run.
      const damaged = join(tmp, "bin", "aether-damaged");
      await Deno.copyFile(aether, damaged);
      const file = await Deno.open(damaged, { write: true });
      await file.seek(-1000, Deno.SeekMode.End);
      await file.write(new TextEncoder().encode("damage"));
      file.close();
      const refused = await new Deno.Command(damaged, {
        args: ["--help"],
        env: { ...env, AETHER_CACHE_DIR: join(tmp, "cache-damaged") },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(refused.code, 1);
      match(
        new TextDecoder().decode(refused.stderr),
        /aether-damaged is damaged: its archive's sha256 is [0-9a-f]{64}/,
      );
      equal(
        [...Deno.readDirSync(join(tmp, "cache-damaged"))].length,
        0,
        "nothing extracted from a damaged file",
      );

      // aether node: a one-member cluster on ephemeral ports.
      const dataDir = join(tmp, "n1");
      const secretFile = join(tmp, "node-secret");
      const secret = `secret-${crypto.randomUUID()}-${crypto.randomUUID()}`;
      await Deno.writeTextFile(secretFile, secret, { mode: 0o600 });
      const token = testAdminToken();
      const tokenFile = join(tmp, "admin-token");
      await Deno.writeTextFile(tokenFile, token, { mode: 0o600 });
      const node = spawn(aether, [
        "node",
        ...["--id", "n1", "--peers", "n1@127.0.0.1:0", "--data-dir", dataDir, "--secret-file", secretFile],
        ...["--api-port", "0", "--http-port", "0", "--bootstrap-token-file", tokenFile],
      ], { cwd: work, env });
      started.push(node);
      const [readyLine] = await node.waitFor(/\{"event":"ready".*\}/, 60_000);
      const ready = JSON.parse(readyLine) as { apiPort: number; httpPort: number; pid: number };
      const connect = ["--connect", `127.0.0.1:${ready.apiPort}`, "--token", token];
      // The node runs as its own process with the narrow permissions, from the extracted Deno.
      const nodeCmdline = Deno.readTextFileSync(`/proc/${ready.pid}/cmdline`).split("\0");
      equal(nodeCmdline[0], join(cache, extracted.name, "deno"));
      ok(nodeCmdline.some((a) => a.startsWith("--allow-write=") && a.endsWith("/n1")), nodeCmdline.join(" "));
      ok(!nodeCmdline.includes("-A") && !nodeCmdline.includes("--allow-all"), nodeCmdline.join(" "));

      // Ready comes before the first leader election is decided: ask until the node names itself leader.
      let status = await cli([...connect, "status"]);
      for (let i = 0; i < 100 && status.code === 0 && !/leader\s+n1/.test(status.stdout); i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = await cli([...connect, "status"]);
      }
      equal(status.code, 0, status.stderr);
      match(status.stdout, /leader\s+n1/);

      // A slice deployed through the compiled CLI serves, and its sandbox still denies what it was not granted.
      const artifactDir = join(tmp, "artifact");
      await writeBuiltSlice(artifactDir, await buildSlice(ESCAPE_FIXTURE));
      const pushed = await cli([...connect, "artifact", "push", artifactDir]);
      equal(pushed.code, 0, `${pushed.stdout}\n${pushed.stderr}`);
      const blueprint = join(tmp, "escape.toml");
      await Deno.writeTextFile(
        blueprint,
        `id = "org.example.compile:escape-app:1.0.0"\n[[slices]]\nartifact = "org.example.compile:escape:1.0.0"\n`,
      );
      const applied = await cli([...connect, "blueprint", "apply", blueprint, "--wait"]);
      equal(applied.code, 0, `${applied.stdout}\n${applied.stderr}`);

      const app = `http://127.0.0.1:${ready.httpPort}/escape`;
      const hello = await fetch(`${app}/hello`);
      const helloBody = await hello.json() as { message: string; pid: number };
      equal(hello.status, 200, JSON.stringify(helloBody));
      equal(helloBody.message, "hello from a compiled node");
      // Process isolation (the node's default): the slice ran in its own process, not in the node's.
      ok(helloBody.pid !== ready.pid, "the slice runs in a sandbox process of its own");

      const escape = await fetch(`${app}/read`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ path: secretFile }),
      });
      const escapeText = await escape.text();
      ok(escape.status >= 400, `reading the node's secret answered ${escape.status}: ${escapeText}`);
      ok(!escapeText.includes(secret), "the secret must not leak");
      match(escapeText, /NotCapable|PermissionDenied|read access/i);

      // Closing standard input stops the node (and the launcher with it) cleanly.
      await node.child.stdin.close();
      equal((await node.child.status).code, 0, node.stderr());

      // aether forge --no-example: a one-node cluster, its status through the CLI, and a clean SIGINT stop.
      const forge = spawn(aether, ["forge", "--no-example", "--nodes", "1"], { cwd: work, env });
      started.push(forge);
      const [, forgeApi] = await forge.waitFor(/api (http:\/\/127\.0\.0\.1:\d+)/, 90_000);
      const forgeStatus = await cli(["--connect", forgeApi.replace("http://", ""), "status"]);
      equal(forgeStatus.code, 0, forgeStatus.stderr);
      match(forgeStatus.stdout, /leader\s+n1/);
      ok(processesMentioning(cache).length >= 2, "forge and its node run from the extracted Deno");
      const forgeExit = await stopChild(forge, "SIGINT");
      equal(forgeExit.code, 0, `${forge.stdout()}\n${forge.stderr()}`);
      await waitUntil(() => processesMentioning(cache).length === 0, "forge's nodes to exit", 15_000);
    } finally {
      for (const spawned of started) await stopChild(spawned, "SIGTERM").catch(() => {});
      for (const pid of processesMentioning(cache)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone.
        }
      }
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
