/** Help text, did-you-mean and flag checks in process: every command, at several widths. */

import assert from "node:assert/strict";
import { cliCommands, groupNames, usage } from "./main.ts";
import { commandHelp, wrap } from "./_help.ts";
import { normalizeArgs, parseFor } from "./_args.ts";
import { closest, editDistance } from "./_suggest.ts";
import { CliError } from "./client.ts";
import { complete } from "./_repl.ts";
import { MAX_INSTANCES as CLI_MAX_INSTANCES } from "./commands/deployment.ts";
import { MAX_INSTANCES } from "../deployment/mod.ts";

const WIDTHS = [40, 60, 80, 100, 140];

function longest(text: string): string {
  return text.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
}

Deno.test("help: every command's help fits every width and names each of its flags", () => {
  assert.ok(cliCommands().length >= 30, "every command is registered");
  for (const command of cliCommands()) {
    for (const width of WIDTHS) {
      const text = commandHelp(command, width);
      const line = longest(text);
      assert.ok(line.length <= width, `${command.name} at ${width}: ${line.length} columns: "${line}"`);
      assert.match(text, new RegExp(`^usage: aether ${command.name}`), command.name);
      for (const flag of command.flags ?? []) {
        assert.ok(text.includes(`--${flag.name}`), `${command.name} --help names --${flag.name}`);
      }
    }
  }
});

Deno.test("help: the top-level list is grouped, one line per command, within the width", () => {
  for (const width of WIDTHS) {
    const text = usage(width);
    assert.ok(longest(text).length <= width, `top-level help at ${width}: "${longest(text)}"`);
  }
  const text = usage(100);
  // Every command is listed once: on a line of its own, or by its word on its group's collapsed line.
  for (const command of cliCommands()) {
    const own = new RegExp(`^  ${command.name}\\s{2,}\\S`);
    const [word, ...rest] = command.name.split(" ");
    const sub = rest.join(" ");
    const collapsed = (l: string) =>
      l.startsWith(`  ${word} ...`) && l.split(/\s{2,}/)[2]?.split(", ").includes(sub);
    assert.equal(text.split("\n").filter((l) => own.test(l) || collapsed(l)).length, 1, command.name);
  }
  for (const name of ["node", "forge"]) assert.match(text, new RegExp(`^  ${name}\\s`, "m"));
  assert.match(text, /^deployment:$/m);
  assert.deepEqual([...groupNames()].sort(), [
    "alert",
    "artifact",
    "aspect",
    "blueprint",
    "cluster",
    "config",
    "controller",
    "db",
    "infra",
    "jobs",
    "kv",
    "node",
    "ratelimit",
    "rollout",
    "secret",
    "slice",
    "sm",
    "timeout",
    "token",
    "topics",
  ]);
});

Deno.test("help: wrap never splits under the width and keeps every word", () => {
  const text = "a ".repeat(30) + "averyveryveryverylongwordthatdoesnotfitonaline end";
  for (const width of [10, 20, 33]) {
    const lines = wrap(text, width, "  - ", 4);
    for (const line of lines) assert.ok(line.length <= width, `"${line}" at ${width}`);
    assert.equal(lines.join("").replaceAll(" ", "").replace("-", ""), text.replaceAll(" ", ""));
  }
});

Deno.test("did-you-mean: edit distance and the closest name within reach", () => {
  assert.equal(editDistance("stauts", "status"), 1, "a swap of neighbours is one edit");
  assert.equal(editDistance("deploy", "undeploy"), 2);
  assert.equal(closest("stauts", ["status", "slices", "scale"]), "status");
  assert.equal(closest("instance", ["instances", "dry-run"]), "instances");
  assert.equal(closest("frobnicate", ["status", "slices"]), undefined, "nothing close: no suggestion");
});

function command(name: string) {
  const found = cliCommands().find((c) => c.name === name);
  if (!found) throw new Error(`no command ${name}`);
  return found;
}

function usageError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof CliError, String(e));
    assert.equal(e.exitCode, 2, e.message);
    return e.message;
  }
  throw new Error("expected a usage error");
}

Deno.test("flags: unknown flags suggest the closest, integers are range-checked, negatives are values", () => {
  const deploy = command("deploy");
  assert.equal(
    usageError(() => normalizeArgs(deploy, ["g:a:1.0.0", "--instance", "2"])),
    'deploy: unknown flag --instance; did you mean --instances? (see "aether deploy --help")',
  );
  assert.equal(
    usageError(() => normalizeArgs(deploy, ["g:a:1.0.0", "--instances", "-1"])),
    "deploy: --instances: -1 is out of range; expected an integer from 0 to 10000",
  );
  assert.equal(
    usageError(() => normalizeArgs(deploy, ["g:a:1.0.0", "--instances=10001"])),
    "deploy: --instances: 10001 is out of range; expected an integer from 0 to 10000",
  );
  assert.match(
    usageError(() => normalizeArgs(deploy, ["g:a:1.0.0", "--instances", "two"])),
    /"two" is not an/,
  );
  assert.match(
    usageError(() => normalizeArgs(deploy, ["g:a:1.0.0", "--instances"])),
    /--instances needs a value/,
  );
  assert.match(usageError(() => normalizeArgs(deploy, ["g:a:1.0.0", "-x"])), /unknown flag -x/);
  assert.match(usageError(() => normalizeArgs(deploy, ["g:a:1.0.0", "--dry-run=yes"])), /takes no value/);
  const parsed = parseFor(deploy, ["g:a:1.0.0", "--instances", "0", "--dry-run"]);
  assert.deepEqual([parsed.positionals, parsed.int("instances"), parsed.boolean("dry-run")], [
    ["g:a:1.0.0"],
    0,
    true,
  ]);
  assert.match(usageError(() => parseFor(deploy, [])), /deploy: expected <group:artifact:version>/);
  assert.match(usageError(() => parseFor(command("slices"), ["extra"])), /slices: expected no arguments/);
  // A value that starts with a dash is still a value: kv put reads standard input from "-".
  assert.deepEqual(parseFor(command("kv put"), ["app/x", "-"]).positionals, ["app/x", "-"]);
  assert.equal(CLI_MAX_INSTANCES, MAX_INSTANCES, "the CLI's range is the API's");
});

Deno.test("completion: command names, group words, then the flags of the command typed", () => {
  assert.deepEqual(complete("sta")[0], ["status"]);
  assert.deepEqual(complete("blueprint a")[0], ["blueprint apply"]);
  assert.ok(complete("k")[0].includes("kv"));
  assert.deepEqual(complete("deploy g:a:1.0.0 --inst"), [["--instances"], "--inst"]);
  assert.deepEqual(complete("deploy g:a:1.0.0 ")[0], []);
});
