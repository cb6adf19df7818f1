/**
 * `deno task install` (tools/install.ts): the `aether` launcher it writes runs with nothing on PATH (no deno,
 * npx or node), starts a node with the node's narrow permissions, answers `status` quickly, says how to put its
 * directory on PATH only when it is not there, and when the Deno binary it was installed with is gone it says
 * so and how to install again. The measured times are printed (the README's figures come from here and from
 * /tmp/notes/install.md).
 */

import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { testAdminToken } from "../_support/cluster.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const INSTALL = join(ROOT, "tools", "install.ts");
/** The install task's permissions (deno.json). */
const INSTALL_PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-run"];

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

async function run(file: string, args: string[], env: Record<string, string>, cwd = ROOT): Promise<Ran> {
  const started = performance.now();
  const out = await new Deno.Command(file, { args, env, clearEnv: true, cwd, stdin: "null" }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
    ms: performance.now() - started,
  };
}

function install(deno: string, args: string[], env: Record<string, string>): Promise<Ran> {
  return run(deno, ["run", ...INSTALL_PERMISSIONS, INSTALL, ...args], env);
}

/** The best of `runs` wall times (the first run of a command fills Deno's caches; that one is excluded). */
async function bestOf(runs: number, once: () => Promise<Ran>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const ran = await once();
    equal(ran.code, 0, ran.stderr);
    best = Math.min(best, ran.ms);
  }
  return best;
}

Deno.test({
  name: "install: the launcher runs with nothing on PATH, starts a narrow node, and answers status fast",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "aether-install-" });
    let node: Deno.ChildProcess | undefined;
    try {
      const bin = join(tmp, "bin");
      const home = Deno.env.get("HOME") ?? tmp;
      const installed = await install(Deno.execPath(), ["--bin-dir", bin], {
        HOME: home,
        PATH: "/usr/bin:/bin",
      });
      equal(installed.code, 0, installed.stderr);
      const aether = join(bin, "aether");
      match(installed.stdout, new RegExp(`Installed ${aether}`));
      match(installed.stdout, new RegExp(`${bin} is not on your PATH`));
      match(installed.stdout, new RegExp(`export PATH="${bin}:\\$PATH"`));
      const script = await Deno.readTextFile(aether);
      match(script, /^#!\/bin\/sh\n/);
      ok(script.includes(Deno.execPath()), "the launcher names the Deno binary that ran the install");
      ok(((await Deno.stat(aether)).mode! & 0o111) !== 0, "the launcher is executable");

      // Installed again with its directory on PATH: no advice to change PATH.
      const again = await install(Deno.execPath(), ["--", "--bin-dir", bin], {
        HOME: home,
        PATH: `${bin}:/bin`,
      });
      equal(again.code, 0, again.stderr);
      match(again.stdout, /is on your PATH: try `aether --help`/);

      // Bad input names what was wrong.
      const unknown = await install(Deno.execPath(), ["--bin-dri", bin], { HOME: home, PATH: "/bin" });
      equal(unknown.code, 2);
      match(unknown.stderr, /--bin-dri/);

      // Nothing on PATH at all: the launcher needs no deno, npx or node.
      const env = { HOME: home, PATH: join(tmp, "empty"), NO_COLOR: "1" };
      const help = await run(aether, ["--help"], env, tmp);
      equal(help.code, 0, help.stderr);
      match(help.stdout, /usage: aether/);
      const helpMs = await bestOf(3, () => run(aether, ["--help"], env, tmp));

      const dataDir = join(tmp, "n1");
      const secretFile = join(tmp, "secret");
      await Deno.writeTextFile(secretFile, crypto.randomUUID() + crypto.randomUUID());
      const token = testAdminToken();
      const tokenFile = join(tmp, "admin-token");
      await Deno.writeTextFile(tokenFile, token, { mode: 0o600 });
      node = new Deno.Command(aether, {
        args: [
          "node",
          ...["--id", "n1", "--peers", "n1@127.0.0.1:0", "--data-dir", dataDir, "--secret-file", secretFile],
          ...["--api-port", "0", "--http-port", "0", "--bootstrap-token-file", tokenFile],
        ],
        cwd: tmp,
        env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const reader = node.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`aether node exited before its ready line: ${out}`);
        out += value;
      }
      const ready = JSON.parse(out.split("\n")[0]) as { event: string; apiPort: number; pid: number };
      equal(ready.event, "ready");
      const cmdline = (await Deno.readTextFile(`/proc/${ready.pid}/cmdline`)).split("\0");
      ok(cmdline.includes(`--allow-write=${dataDir}`), cmdline.join(" "));
      ok(!cmdline.includes("-A") && !cmdline.includes("--allow-all"), cmdline.join(" "));
      ok(cmdline.includes("--cached-only"), cmdline.join(" "));

      const connect = ["--connect", `127.0.0.1:${ready.apiPort}`, "--token", token];
      // Ready comes before the first leader election is decided: ask until the node names itself leader.
      let status = await run(aether, [...connect, "status"], env, tmp);
      for (let i = 0; i < 100 && status.code === 0 && !/leader\s+n1/.test(status.stdout); i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = await run(aether, [...connect, "status"], env, tmp);
      }
      equal(status.code, 0, status.stderr);
      match(status.stdout, /leader\s+n1/);
      const statusMs = await bestOf(5, () => run(aether, [...connect, "status"], env, tmp));
      // The same request by curl, the floor for a process that asks a node for its status.
      const statusUrl = `http://127.0.0.1:${ready.apiPort}/api/v1/status`;
      const curl = await Deno.stat("/usr/bin/curl").then(() => true, () => false);
      const curlArgs = ["-sf", "-H", `Authorization: Bearer ${token}`, statusUrl];
      const curlMs = curl ? await bestOf(5, () => run("/usr/bin/curl", curlArgs, env, tmp)) : NaN;
      console.log(
        `aether --help ${helpMs.toFixed(0)} ms; aether status ${statusMs.toFixed(0)} ms; ` +
          `curl of GET /api/v1/status ${curl ? `${curlMs.toFixed(0)} ms` : "(no curl here)"} ` +
          "(best of 3/5/5 after the first run)",
      );
      // The goal is well under a second (300 ms for status); the margin is for a loaded 2-core machine.
      ok(helpMs < 1500, `aether --help took ${helpMs} ms`);
      ok(statusMs < 1500, `aether status took ${statusMs} ms`);

      await reader.cancel();
      await node.stdin.close();
      equal((await node.status).code, 0);
      node = undefined;
    } finally {
      if (node) {
        try {
          node.kill("SIGKILL");
        } catch {
          // Gone.
        }
        await node.status;
      }
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("install: when the Deno binary it was installed with is gone, aether says so and how to reinstall", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "aether-install-gone-" });
  try {
    // An install run by a copy of Deno, which then disappears (as when npx's cache is cleaned).
    const deno = join(tmp, "deno");
    await Deno.copyFile(Deno.execPath(), deno);
    await Deno.chmod(deno, 0o755);
    const bin = join(tmp, "bin");
    const installed = await install(deno, ["--bin-dir", bin], { HOME: tmp, PATH: "/usr/bin:/bin" });
    equal(installed.code, 0, installed.stderr);
    const aether = join(bin, "aether");
    const env = { HOME: tmp, PATH: "/nonexistent", NO_COLOR: "1" };
    equal((await run(aether, ["--help"], env, tmp)).code, 0);

    await Deno.remove(deno);
    const gone = await run(aether, ["status"], env, tmp);
    equal(gone.code, 127);
    match(gone.stderr, new RegExp(`the Deno binary it was installed with is gone: ${deno}`));
    match(gone.stderr, /npx -y deno@2\.9\.6 task install/);
    match(gone.stderr, new RegExp(`cd '${ROOT.replace(/\/$/, "")}'`));
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
