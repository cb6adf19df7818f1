/**
 * The `aether` CLI as an operator meets it: help for every command within the width, did-you-mean and exit
 * codes, range errors, group listings, the interactive shell on a real pseudo-terminal (line editing, history
 * across sessions, Tab completion), finding the Forge cluster of a directory through .forge/forge.json with
 * its first node down, and `deploy`/`undeploy` keeping what runs.
 */

import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { cliCommands, DEFAULT_HELP_WIDTH, HISTORY_LIMIT } from "../../runtime/cli/mod.ts";
import { freePort } from "../../runtime/forge/mod.ts";
import { TestCluster } from "../_support/cluster.ts";
import { runCli } from "../_support/cli.ts";
import { deployFixture, GROUP, pushArtifact } from "../_support/deployment.ts";

const MAIN = fileURLToPath(new URL("../../runtime/main.ts", import.meta.url));

const cli = (args: string[], options: { cwd?: string } = {}) => runCli(args, options);

function longestLine(text: string): string {
  return text.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
}

Deno.test("CLI help: every command answers --help (exit 0) within 100 columns; -h and help <command> too", async () => {
  const commands = cliCommands();
  // Several commands per process would hide a slow start; one process each, a few at a time.
  const queue = [...commands];
  const work = Array.from({ length: 4 }, async () => {
    for (let command = queue.shift(); command; command = queue.shift()) {
      const run = await cli([...command.name.split(" "), "--help"]);
      equal(run.code, 0, `${command.name} --help: ${run.stderr}`);
      match(run.stdout, new RegExp(`^usage: aether ${command.name}`), command.name);
      for (const flag of command.flags ?? []) {
        ok(run.stdout.includes(`--${flag.name}`), `${command.name}: --${flag.name}`);
      }
      const line = longestLine(run.stdout);
      ok(line.length <= DEFAULT_HELP_WIDTH, `${command.name} --help has a line of ${line.length}: "${line}"`);
    }
  });
  await Promise.all(work);

  const short = await cli(["deploy", "-h"]);
  const long = await cli(["help", "deploy"]);
  equal(short.code, 0);
  equal(long.stdout, short.stdout, "help deploy = deploy -h");
  match(short.stdout, /--instances N\s+how many instances \(default: the running count/);

  const top = await cli(["--help"]);
  equal(top.code, 0);
  ok(longestLine(top.stdout).length <= DEFAULT_HELP_WIDTH, longestLine(top.stdout));
  match(top.stdout, /^deployment:\n {2}blueprint \.\.\.\s+apply, validate, list/m);
  match(top.stdout, /^ {2}forge\s+a local cluster/m);
  // Short: one line per command, or per group of 3 or more subcommands (`rollout ...  start, status, ...`),
  // no flags; each command's own --help has those.
  const commandLines = top.stdout.split("\n").filter((line) => /^ {2}\S/.test(line));
  ok(commandLines.every((line) => !/--\w/.test(line.slice(0, 22))), "no flags in the command list");
  ok(top.stdout.split("\n").length < 90, "the top-level help is short");
});

Deno.test("CLI usage errors: exit 2 with a did-you-mean; range errors; a group name lists its commands", async () => {
  const cases: [string[], RegExp][] = [
    [["stauts"], /unknown command "stauts"; did you mean "status"\?/],
    [["forg"], /did you mean "forge"\?/],
    [["nod"], /did you mean "node"\?/],
    [["frobnicate"], /unknown command "frobnicate" \("aether help" lists the commands\)/],
    [["blueprint", "aply", "x.toml"], /unknown command "blueprint aply"; did you mean "blueprint apply"\?/],
    [["kv", "gte", "app/x"], /did you mean "kv get"\?/],
    [
      ["deploy", "g:a:1.0.0", "--instnces", "2"],
      /deploy: unknown flag --instnces; did you mean --instances\?/,
    ],
    [
      ["deploy", "g:a:1.0.0", "--instances", "-1"],
      /deploy: --instances: -1 is out of range; expected an integer from 0 to 10000/,
    ],
    [["scale", "g:a", "--instances", "-3"], /scale: --instances: -3 is out of range/],
    [["kv", "list", "--limit", "0"], /kv list: --limit: 0 is out of range; expected an integer from 1 to/],
    [["--conect", "127.0.0.1:1", "status"], /unknown flag --conect; did you mean --connect\?/],
    [["status", "extra"], /status: expected no arguments/],
  ];
  await Promise.all(cases.map(async ([args, pattern]) => {
    const run = await cli(["--connect", "127.0.0.1:1", ...args]);
    equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    match(run.stderr, pattern, args.join(" "));
    ok(!/ambiguous/.test(run.stderr), run.stderr);
  }));

  for (const group of ["blueprint", "kv", "artifact"]) {
    const run = await cli([group]);
    equal(run.code, 0, run.stderr);
    match(run.stdout, new RegExp(`"${group}" is a group of commands:`));
    const members = cliCommands().filter((c) => c.name.startsWith(`${group} `));
    ok(members.length >= 4, group);
    for (const c of members) match(run.stdout, new RegExp(`^  ${c.name}\\s`, "m"), c.name);
  }
});

/** Runs the CLI on a pseudo-terminal (util-linux `script`) and types into it. */
class PtySession {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  output = "";
  #done: Promise<void>;

  constructor(args: string[], env: Record<string, string>) {
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const command = [Deno.execPath(), "run", "-A", MAIN, ...args].map(quote).join(" ");
    this.#child = new Deno.Command("script", {
      args: ["-qfec", command, "/dev/null"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { TERM: "xterm", NO_COLOR: "1", ...env },
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    const stdout = this.#child.stdout;
    this.#done = (async () => {
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) this.output += chunk;
    })();
  }

  /** Waits until the output holds `count` prompts. */
  async prompts(count: number, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.output.match(/aether> /g) ?? []).length < count) {
      if (Date.now() > deadline) {
        throw new Error(`waited for prompt ${count}; output so far:\n${this.output}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Waits until the output ends with `text` (what was typed has been echoed). */
  async echoed(text: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.endsWith(text)) {
      if (Date.now() > deadline) throw new Error(`waited for "${text}"; output so far:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Types keys one write at a time (a pause after each, so the terminal sees keystrokes, not a paste). */
  async type(...keys: string[]): Promise<void> {
    for (const key of keys) {
      await this.#writer.write(new TextEncoder().encode(key));
      await new Promise((r) => setTimeout(r, 60));
    }
  }

  async close(): Promise<number> {
    await this.#writer.close().catch(() => {});
    const status = await this.#child.status;
    await this.#done;
    await this.#child.stderr.cancel().catch(() => {});
    return status.code;
  }
}

const UP = "\x1b[A",
  LEFT = "\x1b[D",
  CTRL_A = "\x01",
  CTRL_E = "\x05",
  BACKSPACE = "\x7f",
  ENTER = "\r",
  TAB = "\t";

Deno.test("CLI shell on a terminal: line editing, history across sessions, Tab completion", async () => {
  const cluster = await TestCluster.start(1);
  const state = await Deno.makeTempDir({ prefix: "aether-cli-state-" });
  try {
    await cluster.waitForLeader();
    const connect = [
      "--connect",
      cluster.nodes[0].apiUrl.replace("http://", ""),
      "--token",
      cluster.nodes[0].options.token!,
    ];
    const env = { XDG_STATE_HOME: state, HOME: state };

    const first = new PtySession(connect, env);
    await first.prompts(1);
    await first.type("kv put app/pty edited", ENTER);
    await first.prompts(2);
    // "kv ge app/pty": back over " app/pty" to the end of "ge", insert the "t"; Ctrl-A, Ctrl-E and a
    // backspace over a stray character.
    await first.type("kv ge app/ptyX", BACKSPACE, ...Array(8).fill(LEFT), "t", CTRL_A, CTRL_E, ENTER);
    await first.prompts(3);
    // Tab completes "status" (once "sta" has been read: a Tab in the same read would count as pasted text).
    await first.type("sta");
    await first.echoed("sta");
    await first.type(TAB, ENTER);
    await first.prompts(4);
    await first.type("exit", ENTER);
    equal(await first.close(), 0, first.output);
    match(first.output, /revision \d+/);
    match(first.output, /\r?\nedited\r?\n/, "kv get ran the edited line");
    match(first.output, /leader\s+n1/, "status ran after Tab");
    ok(!first.output.includes("^[["), `no raw escape sequences are echoed:\n${first.output}`);

    const history = await Deno.readTextFile(`${state}/aether/history`);
    equal(history, "kv put app/pty edited\nkv get app/pty\nstatus\n");

    // A new session: Up brings back the last command of the one before.
    await cluster.nodes[0].json("/api/v1/health");
    const second = new PtySession(connect, env);
    await second.prompts(1);
    await second.type(UP, UP, ENTER); // two back: "kv get app/pty"
    await second.prompts(2);
    await second.type("exit", ENTER);
    equal(await second.close(), 0, second.output);
    match(second.output, /\r?\nedited\r?\n/, `Up Up Enter re-ran kv get:\n${second.output}`);
    ok(!second.output.includes("^[[A"), second.output);
  } finally {
    await cluster.close();
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("CLI shell history is bounded to HISTORY_LIMIT lines", async () => {
  const state = await Deno.makeTempDir({ prefix: "aether-cli-state-" });
  try {
    await Deno.mkdir(`${state}/aether`);
    const old = Array.from({ length: HISTORY_LIMIT + 50 }, (_, i) => `kv get app/${i}`);
    await Deno.writeTextFile(`${state}/aether/history`, old.join("\n") + "\n");
    const session = new PtySession(["--connect", "127.0.0.1:1"], { XDG_STATE_HOME: state, HOME: state });
    await session.prompts(1);
    await session.type("slices", ENTER);
    await session.prompts(2);
    await session.type("exit", ENTER);
    await session.close();
    const lines = (await Deno.readTextFile(`${state}/aether/history`)).trimEnd().split("\n");
    equal(lines.length, HISTORY_LIMIT);
    equal(lines.at(-1), "slices");
    equal(lines[0], `kv get app/${51}`, "the oldest lines went first");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("CLI finds the Forge cluster of the directory (.forge/forge.json) and skips a node that is down", async () => {
  const cluster = await TestCluster.start(1);
  const dir = await Deno.makeTempDir({ prefix: "aether-cli-forge-" });
  try {
    await cluster.waitForLeader();
    const live = cluster.nodes[0].apiUrl.replace("http://", "");
    const down = `127.0.0.1:${freePort()}`;
    await Deno.mkdir(`${dir}/.forge`);
    await Deno.mkdir(`${dir}/src/deep`, { recursive: true });
    const forge = {
      pid: 1,
      control: "http://127.0.0.1:1",
      nodes: [
        { id: "n1", api: down, app: "http://127.0.0.1:1", running: true },
        { id: "n2", api: live, app: "http://127.0.0.1:1", running: true },
      ],
    };
    await Deno.writeTextFile(`${dir}/.forge/forge.json`, JSON.stringify(forge));

    const cwd = `${dir}/src/deep`; // found in a parent directory, as git finds its repository
    // Without Forge's admin token the node refuses, and the CLI says how to supply one.
    const refused = await cli(["status"], { cwd });
    equal(refused.code, 1, refused.stderr);
    match(refused.stderr, /401 unauthorized: .*needs a token/);
    match(refused.stderr, /no token was sent; pass --token TOKEN, set AETHER_TOKEN, or run "aether login"/);
    // Forge writes .forge/admin-token beside forge.json: the CLI sends it, nobody types a token.
    await Deno.writeTextFile(`${dir}/.forge/admin-token`, cluster.token + "\n", { mode: 0o600 });
    const status = await cli(["status"], { cwd });
    equal(status.code, 0, status.stderr);
    match(status.stdout, /leader\s+n1/);
    // A token an earlier cluster on the same ports left in the credentials file does not shadow Forge's.
    const config = `${dir}/config`;
    await Deno.mkdir(`${config}/aether`, { recursive: true });
    const stale = {
      token: "aether_0ldc1u5ter_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      savedAt: "2026-01-01",
    };
    await Deno.writeTextFile(
      `${config}/aether/credentials`,
      JSON.stringify({ clusters: { [`http://${live}`]: stale } }),
    );
    const withStale = await runCli(["status"], { cwd, env: { XDG_CONFIG_HOME: config } });
    equal(withStale.code, 0, withStale.stderr);
    const put = await cli(["kv", "put", "app/forge", "found"], { cwd });
    equal(put.code, 0, put.stderr);
    equal((await cli(["kv", "get", "app/forge", "--consistent"], { cwd })).stdout.trim(), "found");

    // --connect may name several nodes too; the first that accepts the connection answers.
    const listed = await cli(["--connect", `${down},${live}`, "status"], { cwd: dir });
    equal(listed.code, 0, listed.stderr);

    // --connect still wins over the file.
    const explicit = await cli(["--connect", down, "status"], { cwd });
    equal(explicit.code, 3);
    match(explicit.stderr, new RegExp(`cannot reach http://${down} \\(connection refused\\)`));

    // Every node down: the message names each address, the file, and how to choose another.
    forge.nodes[1].api = `127.0.0.1:${freePort()}`;
    await Deno.writeTextFile(`${dir}/.forge/forge.json`, JSON.stringify(forge));
    const none = await cli(["status"], { cwd });
    equal(none.code, 3);
    match(none.stderr, new RegExp(`http://${down} \\(connection refused\\), http://${forge.nodes[1].api}`));
    match(none.stderr, /\.forge\/forge\.json/);
    match(
      none.stderr,
      /--connect HOST:PORT or AETHER_CONNECT=HOST:PORT, or start a local cluster with "aether forge"/,
    );

    await Deno.writeTextFile(`${dir}/.forge/forge.json`, `{"nodes": [{"id": "n1"}]}`);
    const broken = await cli(["status"], { cwd });
    equal(broken.code, 2);
    match(broken.stderr, /forge\.json: nodes\[0\]\.api must be a "host:port" string/);
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI deploy of a new version keeps the instance count; undeploy of another version is refused", async () => {
  const cluster = await TestCluster.start(1);
  try {
    await cluster.waitForLeader();
    const [node] = cluster.nodes;
    const connect = ["--connect", node.apiUrl.replace("http://", ""), "--token", node.options.token!];
    await pushArtifact(node, await deployFixture("audit"));
    await pushArtifact(node, await deployFixture("audit", "1.1.0"));
    const slice = `${GROUP}:audit`;

    const first = await cli([...connect, "deploy", `${slice}:1.0.0`, "--instances", "2"]);
    equal(first.code, 0, first.stderr);
    match(first.stdout, /audit: - -> 1\.0\.0 x2/);
    const upgraded = await cli([...connect, "deploy", `${slice}:1.1.0`]);
    equal(upgraded.code, 0, upgraded.stderr);
    match(upgraded.stdout, /audit: 1\.0\.0 x2 -> 1\.1\.0 x2/);

    const refused = await cli([...connect, "undeploy", `${slice}:1.0.0`]);
    equal(refused.code, 1);
    match(
      refused.stderr,
      /409 .*audit:1\.0\.0 is not deployed; org\.example\.deploy:audit runs version 1\.1\.0/,
    );
    const still = await cli([...connect, "--json", "slices"]);
    const audit = JSON.parse(still.stdout).find((s: { slice: string }) => s.slice === slice);
    equal(audit?.version, "1.1.0", "the refused undeploy changed nothing");

    const removed = await cli([...connect, "undeploy", `${slice}:1.1.0`]);
    equal(removed.code, 0, removed.stderr);
    match(removed.stdout, /audit: 1\.1\.0 x2 -> -/);
  } finally {
    await cluster.close();
  }
});
