/**
 * deploy/systemd/aether-node.service, the unit the README's production section installs:
 * - `systemd-analyze verify` (Debian's systemd) accepts it without a single warning. verify exits 0 even for
 *   values it ignores ("Failed to parse ..., ignoring"), so any output fails the test; a deliberately broken
 *   copy proves the check can fail. The unit's ExecStart names /usr/local/bin/aether, which verify requires to
 *   exist, so the checked copy points at a stand-in executable; nothing else is changed.
 * - Where systemd-analyze is missing, that test says so and passes; the checks below run everywhere: every line
 *   is a comment, a section header or a Key=Value; the directives that make it a supervised, narrow service are
 *   there; and the ExecStart command line, with the example environment file's values and systemd's specifiers
 *   filled in, is accepted by `aether node`'s own flag parser.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { parseNodeFlags } from "../../runtime/node/flags.ts";

const UNIT = fileURLToPath(new URL("../../deploy/systemd/aether-node.service", import.meta.url));
const ENV_EXAMPLE = fileURLToPath(new URL("../../deploy/systemd/aether-node.env.example", import.meta.url));
const INSTALLED_BINARY = "/usr/local/bin/aether";

type Unit = Map<string, Map<string, string[]>>;

/** A unit file's sections and directives (a directive may repeat); throws naming the first bad line. */
function parseUnit(text: string, file: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | null = null;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  lines.forEach((raw, index) => {
    const line = raw.trim();
    const where = `${file}:${index + 1}`;
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      if (unit.has(header[1])) throw new Error(`${where}: section [${header[1]}] appears twice`);
      unit.set(header[1], section = new Map());
      return;
    }
    const directive = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!directive) throw new Error(`${where}: "${line}" is neither a comment, a [Section] nor Key=Value`);
    if (!section) throw new Error(`${where}: ${directive[1]}= comes before any [Section]`);
    section.set(directive[1], [...(section.get(directive[1]) ?? []), directive[2].trim()]);
  });
  return unit;
}

function only(unit: Unit, section: string, key: string): string {
  const values = unit.get(section)?.get(key) ?? [];
  equal(values.length, 1, `[${section}] ${key}= should appear once, found ${values.length}`);
  return values[0];
}

/** KEY=value lines of an environment file. */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const entry = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (entry) env[entry[1]] = entry[2];
  }
  return env;
}

/** ExecStart as systemd runs it: `${VAR}` is one word, `$VAR` splits on spaces, %S and %d are directories. */
function expandExecStart(command: string, env: Record<string, string>): string[] {
  const words: string[] = [];
  for (const word of command.split(/\s+/).filter((w) => w !== "")) {
    const whole = /^\$([A-Z_][A-Z0-9_]*)$/.exec(word);
    if (whole) {
      words.push(...(env[whole[1]] ?? "").split(/\s+/).filter((w) => w !== ""));
      continue;
    }
    words.push(
      word
        .replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name) => {
          if (!(name in env)) throw new Error(`ExecStart uses \${${name}}, which the example env file lacks`);
          return env[name];
        })
        .replace(/%S/g, "/var/lib")
        .replace(/%C/g, "/var/cache")
        .replace(/%d/g, "/run/credentials/aether-node.service"),
    );
  }
  return words;
}

async function systemdAnalyze(): Promise<string | null> {
  for (const path of ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]) {
    try {
      await Deno.stat(path);
      return path;
    } catch {
      // Not there.
    }
  }
  return null;
}

/** Verifies `text` as aether-node.service; returns verify's exit code and everything it printed. */
async function verify(analyze: string, text: string): Promise<{ code: number; output: string }> {
  const dir = await Deno.makeTempDir({ prefix: "aether-unit-" });
  try {
    const standIn = join(dir, "aether");
    await Deno.writeTextFile(standIn, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    await Deno.chmod(standIn, 0o755);
    const unitPath = join(dir, "aether-node.service");
    await Deno.writeTextFile(unitPath, text.replaceAll(INSTALLED_BINARY, standIn));
    const out = await new Deno.Command(analyze, {
      args: ["verify", "--man=no", unitPath],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { SYSTEMD_LOG_COLOR: "0", SYSTEMD_PAGER: "" },
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, output: (decode(out.stdout) + decode(out.stderr)).trim() };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("systemd unit: systemd-analyze verify accepts it without a warning (and rejects a broken copy)", async () => {
  const analyze = await systemdAnalyze();
  if (!analyze) {
    console.log(
      "systemd-analyze is not installed here (Debian package systemd): verify skipped; " +
        "the unit's syntax and directives are checked by the other tests in this file",
    );
    return;
  }
  const text = await Deno.readTextFile(UNIT);
  const result = await verify(analyze, text);
  deepStrictEqual(result, { code: 0, output: "" }, `systemd-analyze verify:\n${result.output}`);

  const broken = await verify(
    analyze,
    text.replace(/^ProtectSystem=strict$/m, "ProtectSystem=very").replace(
      /^Restart=always$/m,
      "Restart=sometimes",
    ),
  );
  match(broken.output, /protect system value.*very/i);
  match(broken.output, /restart specifier.*sometimes/i);
});

Deno.test("systemd unit: every line parses; supervised, narrow, graceful stop on SIGTERM", async () => {
  const unit = parseUnit(await Deno.readTextFile(UNIT), UNIT);
  deepStrictEqual([...unit.keys()], ["Unit", "Service", "Install"]);
  const service = (key: string) => only(unit, "Service", key);
  equal(service("User"), "aether");
  equal(service("Restart"), "always");
  match(service("RestartSec"), /^\d+(ms|s)?$/);
  equal(service("KillSignal"), "SIGTERM");
  equal(service("KillMode"), "mixed");
  equal(service("NoNewPrivileges"), "yes");
  equal(service("ProtectSystem"), "strict");
  equal(service("PrivateTmp"), "yes");
  equal(service("StateDirectory"), "aether");
  match(service("ReadWritePaths"), /%S\/aether/);
  equal(service("CapabilityBoundingSet"), "");
  // V8 compiles to executable memory: MemoryDenyWriteExecute=yes would kill Deno at start.
  ok(!unit.get("Service")!.has("MemoryDenyWriteExecute"));
  equal(only(unit, "Install", "WantedBy"), "multi-user.target");
});

Deno.test("systemd unit: ExecStart with the example environment is a valid `aether node` command line", async () => {
  const unit = parseUnit(await Deno.readTextFile(UNIT), UNIT);
  const env = parseEnvFile(await Deno.readTextFile(ENV_EXAMPLE));
  const [binary, command, ...flags] = expandExecStart(only(unit, "Service", "ExecStart"), env);
  equal(binary, INSTALLED_BINARY);
  equal(command, "node");
  const parsed = parseNodeFlags(flags);
  equal(parsed.id, env.AETHER_NODE_ID);
  equal(parsed.dataDir, "/var/lib/aether");
  equal(parsed.secretFile, "/run/credentials/aether-node.service/cluster-secret");
  equal(parsed.peers.length, 3);
  ok(flags.includes("--log-format"), "the extra flags of AETHER_NODE_ARGS reach the node");
  // The secret the flag names is the credential the unit loads.
  match(only(unit, "Service", "LoadCredential"), /^cluster-secret:\/etc\/aether\/secret$/);
});
