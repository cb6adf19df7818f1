/**
 * `npx -y deno@2.9.6 task compile [--output FILE]`: builds `dist/aether`, one file that runs `aether` on a
 * machine with no Deno, no npm and no network.
 *
 * The file is a POSIX sh script with a gzip'd tar archive appended: the Deno binary running this build, and the
 * runtime as it runs from a checkout (runtime/, slices/, examples/, deno.json, deno.lock and the installed
 * node_modules/). On its first run it checks the archive's sha256 (written into the script at build time),
 * extracts it into ${AETHER_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/aether}/<hash> and from then on execs the
 * extracted Deno on runtime/main.ts with --cached-only and the same per-command permissions as the installed
 * launcher (tools/launcher.ts). A node started from it is therefore the same process as from a checkout: the
 * narrow node permissions, worker and process sandboxes and all.
 *
 * Why not `deno compile` when a Deno runtime binary (denort) is at hand: a compiled binary is not a Deno
 * (Deno.execPath() is the binary itself and has no `run`), and its permissions are fixed when it is built. A
 * node must start itself with narrower permissions than `aether` has (node/permissions.ts) and start process
 * sandboxes with narrower ones still (sandbox/_process_channel.ts); both need a real Deno binary. So this build
 * reports a denort it finds (DENORT_BIN or Deno's cache) and builds the self-contained file all the same.
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";
import { DENO_VERSION, execCase } from "./launcher.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** What a running `aether` needs from the checkout, relative to its root (the dashboard as built, not its sources). */
const PAYLOAD_PATHS = [
  "runtime",
  "slices",
  "examples",
  "dashboard/dist",
  "infra/dist",
  "deno.json",
  "deno.lock",
  "node_modules",
];
/** Never shipped: local state and scratch files that may sit in those folders (tar matches any path component). */
const PAYLOAD_EXCLUDES = [".forge", ".aether-data", "zz_*", "*.db-wal", "*.db-shm"];
/** The width of the archive offset in the script (padded with spaces), so that writing the number moves nothing. */
const OFFSET_DIGITS = 12;

const USAGE = `usage: npx -y deno@${DENO_VERSION} task compile [--output FILE]

Builds one executable file (default dist/aether) that carries Deno ${DENO_VERSION} and the Aether runtime
and needs neither network nor anything else installed when it runs.

  --output FILE   where to write it (its folder is created if missing)`;

function fail(message: string, code = 1): never {
  console.error(`compile: ${message}`);
  Deno.exit(code);
}

function parseCompileArgs(args: string[]): { output: string } {
  try {
    const { values } = parseArgs({
      args: args[0] === "--" ? args.slice(1) : args,
      strict: true,
      options: { output: { type: "string", short: "o" }, help: { type: "boolean", short: "h" } },
    });
    if (values.help) {
      console.log(USAGE);
      Deno.exit(0);
    }
    if (values.output !== undefined && values.output.trim() === "") {
      fail("--output: the file name is empty", 2);
    }
    return { output: resolve(values.output ?? join(ROOT, "dist", "aether")) };
  } catch (e) {
    fail(`${(e as Error).message}\n\n${USAGE}`, 2);
  }
}

async function run(command: string, args: string[], what: string, cwd = ROOT): Promise<void> {
  const result = await new Deno.Command(command, {
    args,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  })
    .output();
  if (!result.success) fail(`${what} failed:\n${new TextDecoder().decode(result.stderr)}`);
}

/** A denort this machine has, if any (see the module comment for why it is not used). */
async function findDenort(): Promise<string | null> {
  const candidates: string[] = [];
  const fromEnv = Deno.env.get("DENORT_BIN");
  if (fromEnv) candidates.push(fromEnv);
  const home = Deno.env.get("HOME");
  const denoDir = Deno.env.get("DENO_DIR") ?? (home ? join(home, ".cache", "deno") : null);
  if (denoDir) {
    candidates.push(
      join(denoDir, "dl", "release", `v${DENO_VERSION}`, "denort-x86_64-unknown-linux-gnu.zip"),
    );
  }
  for (const path of candidates) {
    try {
      if ((await Deno.stat(path)).isFile) return path;
    } catch {
      // Not there.
    }
  }
  return null;
}

/** The archive: the Deno binary as `deno` next to the runtime's files, reproducible given the same inputs. */
async function buildArchive(work: string): Promise<string> {
  const denoDir = join(work, "bin");
  await Deno.mkdir(denoDir);
  await Deno.copyFile(Deno.execPath(), join(denoDir, "deno"));
  await Deno.chmod(join(denoDir, "deno"), 0o755);
  const archive = join(work, "payload.tar.gz");
  await run("tar", [
    "--create",
    "--gzip",
    `--file=${archive}`,
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=@0",
    ...PAYLOAD_EXCLUDES.map((pattern) => `--exclude=${pattern}`),
    "-C",
    ROOT,
    ...PAYLOAD_PATHS,
    "-C",
    denoDir,
    "deno",
  ], "tar (packing the runtime)");
  return archive;
}

async function sha256Hex(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The sh part; `offset` is where the archive starts (1-based, for `tail -c +N`). */
export function selfContainedHeader(input: { sha256: string; offset: number; built: string }): string {
  return `#!/bin/sh
# aether: the Aether runtime and Deno ${DENO_VERSION} in one file (${input.built}).
# On the first run the archive after this script is checked against its sha256 and extracted into
# \${AETHER_CACHE_DIR:-\${XDG_CACHE_HOME:-~/.cache}/aether}/<hash>; every run then execs the Deno binary there.
PAYLOAD_SHA256=${input.sha256}
PAYLOAD_OFFSET=${String(input.offset).padEnd(OFFSET_DIGITS, " ")}
SELF=$0
case "$SELF" in */*) ;; *) SELF=$(command -v -- "$SELF") ;; esac
CACHE=\${AETHER_CACHE_DIR:-\${XDG_CACHE_HOME:-$HOME/.cache}/aether}
ROOT=$CACHE/$(printf '%.16s' "$PAYLOAD_SHA256")
DENO=$ROOT/deno

aether_sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d ' ' -f 1
  else echo "aether: needs sha256sum (coreutils) or shasum to check its archive on the first run" >&2; return 1
  fi
}

aether_extract() {
  mkdir -p "$CACHE" || { echo "aether: cannot create $CACHE (choose another with AETHER_CACHE_DIR)" >&2; return 1; }
  work=$(mktemp -d "$CACHE/.extract.XXXXXX") || { echo "aether: cannot write into $CACHE" >&2; return 1; }
  trap 'rm -rf "$work"' EXIT
  tail -c +"$PAYLOAD_OFFSET" "$SELF" > "$work/payload.tar.gz" || return 1
  sum=$(aether_sha256 "$work/payload.tar.gz") || return 1
  if [ "$sum" != "$PAYLOAD_SHA256" ]; then
    echo "aether: $SELF is damaged: its archive's sha256 is $sum, expected $PAYLOAD_SHA256." >&2
    echo "aether: build it again (npx -y deno@${DENO_VERSION} task compile) or copy it again." >&2
    return 1
  fi
  mkdir "$work/root" && tar -xzf "$work/payload.tar.gz" -C "$work/root" || {
    echo "aether: extracting $SELF into $work failed (disk full?)" >&2
    return 1
  }
  rm -f "$work/payload.tar.gz"
  : > "$work/root/.complete"
  # Another first run may have finished meanwhile: its copy is as good as ours.
  mv -T "$work/root" "$ROOT" 2>/dev/null || [ -f "$ROOT/.complete" ] || {
    echo "aether: cannot move the extracted runtime to $ROOT (remove it if it is left over)" >&2
    return 1
  }
  rm -rf "$work"
  trap - EXIT
}

if [ ! -f "$ROOT/.complete" ]; then
  aether_extract || exit 1
fi
${execCase()}
exit 127
`;
}

/** The header with its own length as the offset: a fixed-width number, so writing it changes nothing. */
function header(sha256: string, built: string): string {
  const draft = selfContainedHeader({ sha256, offset: 0, built });
  const bytes = new TextEncoder().encode(draft).length;
  const final = selfContainedHeader({ sha256, offset: bytes + 1, built });
  if (new TextEncoder().encode(final).length !== bytes) throw new Error("the script's length moved");
  return final;
}

async function gitRevision(): Promise<string> {
  try {
    const out = await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], cwd: ROOT }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "unknown revision";
  } catch {
    return "unknown revision";
  }
}

if (import.meta.main) {
  const { output } = parseCompileArgs(Deno.args);
  const started = performance.now();
  const denort = await findDenort();
  if (denort) {
    console.log(
      `compile: ${denort} is a Deno runtime binary, but a \`deno compile\` binary cannot start the node's ` +
        "narrow-permission process nor process sandboxes (it is not a Deno); building the self-contained file",
    );
  }
  // The archive carries node_modules as installed, so everything runs with --cached-only.
  await run(Deno.execPath(), ["install"], '"deno install"');
  const work = await Deno.makeTempDir({ prefix: "aether-compile-" });
  try {
    const archive = await buildArchive(work);
    const sha256 = await sha256Hex(archive);
    const built = `built ${new Date().toISOString().slice(0, 10)} from ${await gitRevision()}`;
    await Deno.mkdir(dirname(output), { recursive: true });
    const temporary = `${output}.tmp-${Deno.pid}`;
    const file = await Deno.open(temporary, { write: true, create: true, truncate: true, mode: 0o755 });
    try {
      await file.write(new TextEncoder().encode(header(sha256, built)));
      const payload = await Deno.open(archive, { read: true });
      await payload.readable.pipeTo(file.writable, { preventClose: true });
    } finally {
      file.close();
    }
    await Deno.chmod(temporary, 0o755);
    await Deno.rename(temporary, output);
    const size = (await Deno.stat(output)).size;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `Built ${output} (${(size / 1024 / 1024).toFixed(1)} MiB, sha256 ${sha256.slice(0, 16)}, ${seconds} s)`,
    );
    console.log(
      `  self-contained: Deno ${DENO_VERSION} and the runtime; extracts into ~/.cache/aether on its first run`,
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
