/**
 * `npx -y deno@2.9.6 task install [--bin-dir DIR]`: installs the `aether` command.
 *
 * Installs the project's dependencies (`deno install`, so that `aether` can run with --cached-only), writes a
 * launcher script into the bin directory (default ~/.local/bin) that runs this checkout with the Deno binary
 * running this install (an absolute path in npx's cache: no deno, npx or node is needed on PATH afterwards),
 * runs it once so Deno's caches are warm, and says how to put the directory on PATH when it is not there yet.
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join, resolve } from "node:path";
import { DENO_VERSION, installedLauncher } from "./launcher.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

const USAGE = `usage: npx -y deno@${DENO_VERSION} task install [--bin-dir DIR]

Installs the \`aether\` command: a small launcher script in DIR (default ~/.local/bin) that runs this checkout
(${ROOT}) with the Deno binary that runs this install.

  --bin-dir DIR   where to write \`aether\` (created if missing)`;

function fail(message: string, code = 1): never {
  console.error(`install: ${message}`);
  Deno.exit(code);
}

function parseInstallArgs(args: string[]): { binDir: string } {
  let values;
  try {
    ({ values } = parseArgs({
      args: args[0] === "--" ? args.slice(1) : args,
      strict: true,
      options: { "bin-dir": { type: "string" }, help: { type: "boolean", short: "h" } },
    }));
  } catch (e) {
    fail(`${(e as Error).message}\n\n${USAGE}`, 2);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const home = Deno.env.get("HOME");
  if (values["bin-dir"] === undefined && !home) {
    fail("HOME is not set: name the directory with --bin-dir DIR", 2);
  }
  const binDir = values["bin-dir"] ?? join(home!, ".local", "bin");
  if (binDir.trim() === "") fail("--bin-dir: the directory name is empty", 2);
  return { binDir: resolve(binDir) };
}

async function installDependencies(): Promise<void> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["install"],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) {
    fail(`"deno install" in ${ROOT} failed:\n${new TextDecoder().decode(result.stderr)}`);
  }
}

/** Writes next to the target and renames, so a running `aether` never sees half a script. */
async function writeLauncher(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(temporary, text, { mode: 0o755 });
  await Deno.chmod(temporary, 0o755);
  await Deno.rename(temporary, path);
}

/** Runs the new launcher once: proves it works and fills Deno's transpile cache for the first real command. */
async function warmUp(launcher: string): Promise<void> {
  const result = await new Deno.Command(launcher, {
    args: ["--help"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) {
    fail(`the new launcher ${launcher} did not run:\n${new TextDecoder().decode(result.stderr)}`);
  }
}

function onPath(binDir: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((entry) => entry !== "" && resolve(entry) === binDir);
}

const { binDir } = parseInstallArgs(Deno.args);
await installDependencies();
try {
  await Deno.mkdir(binDir, { recursive: true });
} catch (e) {
  fail(`cannot create the bin directory ${binDir}: ${(e as Error).message}`);
}
const launcher = join(binDir, "aether");
try {
  await writeLauncher(launcher, installedLauncher({ deno: Deno.execPath(), root: ROOT }));
} catch (e) {
  fail(`cannot write ${launcher}: ${(e as Error).message}`);
}
await warmUp(launcher);

console.log(`Installed ${launcher}`);
console.log(`  runs ${ROOT} with ${Deno.execPath()}`);
if (onPath(binDir)) {
  console.log(`${binDir} is on your PATH: try \`aether --help\`.`);
} else {
  console.log(`${binDir} is not on your PATH. Add it for this shell, and for new ones in ~/.profile:`);
  console.log(`  export PATH="${binDir}:$PATH"`);
  console.log(`  echo 'export PATH="${binDir}:$PATH"' >> ~/.profile`);
  console.log(`Or run it by its full name: ${launcher} --help`);
}
