/**
 * Every `aether` line in a shell block of the docs names a command and flags that exist, including the blocks
 * tests/e2e/docs_test.ts cannot run (a 30 s load, a rollout of a version the example does not have, a
 * production install): each line is checked the way running it would check it before it reaches a node
 * (runtime/cli/usage_check.ts), `aether forge` lines by Forge's option parser and command list, `aether node`
 * lines by the node's flag parser. Synopsis lines (`<node>`, `[--json]`, `a|b`, `...`) are checked only for
 * their command words. Nothing is run and no node is started.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkCommandLine } from "../runtime/cli/usage_check.ts";
import { parseForgeOptions } from "../runtime/forge/options.ts";
import { FORGE_COMMANDS } from "../runtime/forge/commands.ts";
import { EXAMPLES_DIR } from "../runtime/forge/example.ts";
import { parseNodeFlags } from "../runtime/node/flags.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The docs a user reads: the README, docs/, each example's and each runtime folder's README. */
function docFiles(): string[] {
  const out = ["README.md"];
  const under = (dir: string, match: (name: string) => boolean) => {
    for (const entry of Deno.readDirSync(`${ROOT}${dir}`)) {
      if (entry.isFile && match(entry.name)) out.push(`${dir}/${entry.name}`);
      if (entry.isDirectory) {
        try {
          Deno.statSync(`${ROOT}${dir}/${entry.name}/README.md`);
          out.push(`${dir}/${entry.name}/README.md`);
        } catch {
          // No README in this folder.
        }
      }
    }
  };
  under("docs", (name) => name.endsWith(".md"));
  under("examples", () => false);
  under("runtime", () => false);
  return out.sort();
}

const SHELL_LANGUAGES = new Set(["sh", "bash", "shell", "console"]);
const FENCE = /^\s*(`{3,}|~{3,})\s*(\S*)/;

/** Shell words with quotes removed; an unquoted `|`, `;`, `&&`, `>` or `#` ends the command. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(pattern)) {
    if (m[3] !== undefined && (/^(\||\|\||;|&&|&|>|>>|2>&1|<)$/.test(m[3]) || m[3].startsWith("#"))) break;
    words.push(m[1]?.replace(/\\(.)/g, "$1") ?? m[2] ?? m[3]);
  }
  return words;
}

interface AetherLine {
  where: string;
  line: string;
  args: string[];
}

/** Every `aether ...` command of the shell blocks of one Markdown file (continuation lines joined). */
export function aetherLines(markdown: string, file: string): AetherLine[] {
  const lines = markdown.split("\n");
  const out: AetherLine[] = [];
  let fence: string | null = null;
  let shell = false;
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (open && (fence === null || lines[i].trim().startsWith(fence))) {
      if (fence === null) {
        fence = open[1];
        shell = SHELL_LANGUAGES.has(open[2]);
      } else fence = null;
      continue;
    }
    if (fence === null || !shell) continue;
    // `$ aether ...` (a prompt) and `NAME=value aether ...` (an environment for one command) count too.
    let text = lines[i].trim().replace(/^\$\s+/, "").replace(/^([A-Z_][A-Z0-9_]*=\S*\s+)+/, "");
    if (!text.startsWith("aether ") && text !== "aether") continue;
    const where = `${file}:${i + 1}`;
    while (text.endsWith("\\") && i + 1 < lines.length) text = text.slice(0, -1) + " " + lines[++i].trim();
    out.push({ where, line: text, args: shellWords(text).slice(1) });
  }
  return out;
}

/** A synopsis rather than a command: placeholders, alternatives, optional parts. */
const isSynopsisWord = (w: string) => /^[<[]|[<>|]|\.\.\./.test(w) || /^[A-Z][A-Z_:]*$/.test(w);

function forgeProblem(args: string[], synopsis: boolean): string | null {
  const first = args[0];
  if (first !== undefined && !first.startsWith("-")) {
    if (isSynopsisWord(first)) return null;
    return FORGE_COMMANDS.includes(first)
      ? null
      : `"aether forge ${first}": forge has no such command (its commands: ${FORGE_COMMANDS.join(", ")})`;
  }
  if (synopsis) return null;
  try {
    parseForgeOptions(args, EXAMPLES_DIR);
    return null;
  } catch (e) {
    return `aether forge: ${(e as Error).message}`;
  }
}

function nodeProblem(args: string[], synopsis: boolean): string | null {
  if (synopsis || args.includes("--help") || args.includes("-h")) return null;
  try {
    parseNodeFlags(args);
    return null;
  } catch (e) {
    return `aether node: ${(e as Error).message}`;
  }
}

/** What is wrong with one documented line, or null. */
function lineProblem({ args }: AetherLine): string | null {
  const synopsisAt = args.findIndex(isSynopsisWord);
  const synopsis = synopsisAt >= 0;
  const checked = checkCommandLine(synopsis ? args.slice(0, synopsisAt) : args);
  if (checked.kind === "process") {
    return checked.command === "forge"
      ? forgeProblem(checked.args, synopsis)
      : nodeProblem(checked.args, synopsis);
  }
  if (checked.kind === "ok") return null;
  // A synopsis line is cut before its placeholders, so only a wrong command name counts there.
  if (synopsis && !/^unknown command/.test(checked.message)) return null;
  return checked.message;
}

Deno.test("docs: shell words, continuations, prompts and environment prefixes", () => {
  const markdown = [
    "```sh",
    "$ aether kv put app/x 'a b' # a comment",
    "AETHER_CONNECT=10.0.0.1:8080 aether status | head",
    "aether load --rate 200/s \\",
    '  --target "POST /api/v1/orders"',
    "npx -y deno@2.9.6 task forge",
    "```",
    "```",
    "aether not-a-shell-block",
    "```",
    "```ts",
    "aether in-typescript",
    "```",
  ].join("\n");
  const found = aetherLines(markdown, "x.md");
  deepStrictEqual(found.map((l) => [l.where, l.args]), [
    ["x.md:2", ["kv", "put", "app/x", "a b"]],
    ["x.md:3", ["status"]],
    ["x.md:4", ["load", "--rate", "200/s", "--target", "POST /api/v1/orders"]],
  ]);
});

Deno.test("docs: the checker refuses what running the line would refuse", () => {
  const problem = (line: string) => lineProblem({ where: "t", line, args: shellWords(line).slice(1) });
  deepStrictEqual(problem("aether scale org.example:inventory --instances 3 --pin"), null);
  deepStrictEqual(problem("aether --connect 10.0.0.1:8080 --token T login"), null);
  deepStrictEqual(problem("aether forge kill <node>"), null);
  deepStrictEqual(problem("aether forge --nodes 3 --clean"), null);
  deepStrictEqual(problem("aether kv"), null);
  ok(problem("aether stauts")?.includes('unknown command "stauts"'));
  ok(problem("aether deploy g:a:1.0.0 --instnces 2")?.includes("--instnces"));
  ok(problem("aether scale g:a --instances -1")?.includes("out of range"));
  ok(problem("aether forge partiton n1 n2")?.includes("no such command"));
  ok(problem("aether forge --nodes 2")?.includes("--nodes"));
  ok(problem("aether node --id n1 --peers n1@127.0.0.1:7100 --api-prot 8080")?.includes("api-prot"));
  ok(problem("aether blueprint aply shop.toml <file>")?.includes("unknown command"));
});

Deno.test("docs: every aether line in a shell block of the docs names a real command with real flags", () => {
  const files = docFiles();
  const lines = files.flatMap((file) => aetherLines(Deno.readTextFileSync(`${ROOT}${file}`), file));
  ok(lines.length > 50, `only ${lines.length} aether lines found in ${files.join(", ")}`);
  const synopses = lines.filter((l) => l.args.some(isSynopsisWord)).length;
  console.log(`${lines.length} aether lines (${synopses} synopses) in ${files.length} documents`);
  const problems = lines.flatMap((l) => {
    const problem = lineProblem(l);
    return problem ? [`${l.where}: ${l.line}\n  ${problem}`] : [];
  });
  deepStrictEqual(problems, [], `\n${problems.join("\n")}\n`);
});
