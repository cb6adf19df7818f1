/**
 * The documentation works as printed: every command in a runnable block (```` ```sh runnable ````) of
 * README.md, docs/slices.md and examples/ecommerce/README.md runs, in order, against a real Forge started by
 * this test in a directory of its own, with the `aether` command on PATH. Each document runs in a fresh
 * directory (with `.forge` and `examples` linked in), as a user following it from a fresh shell would. See
 * tests/e2e/_docs.ts for the marker's rules.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type DocCommand,
  extractRunnable,
  missingTools,
  outputMatches,
  resultProblem,
  rewritePorts,
  runDocCommand,
} from "./_docs.ts";
import { aetherBinDir, linkExamples, startForge } from "./_forge.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DOCS = ["README.md", "docs/slices.md", "examples/ecommerce/README.md"];
const FORGE_NODES = 3;
/** Forge deploys examples/ecommerce by default: five slices. */
const ECOMMERCE_SLICES = 5;
const FORGE_READY_MS = 180_000;
const COMMAND_TIMEOUT_MS = 120_000;

Deno.test("docs: runnable blocks are extracted with continuations, variables and expected output", () => {
  const markdown = [
    "```sh",
    "aether not-runnable",
    "```",
    "```sh runnable",
    "# a comment",
    "APP=http://127.0.0.1:8071",
    "aether slice init greeter --group org.example   # scaffold ./greeter",
    "curl -s -X POST $APP/x -H 'content-type: application/json' \\",
    "  -d '{",
    '  "a": 1 }\'',
    '# → {"ok":…}',
    "curl -s http://127.0.0.1:8072/y   # → hello",
    "curl -s http://127.0.0.1:8073/z",
    '# → {"a":1,',
    '#    "b":2}',
    "# a comment again",
    "```",
  ].join("\n");
  const commands = extractRunnable(markdown, "doc.md");
  assertEquals(commands.map((c) => [c.where, c.command, c.expected, c.env.APP]), [
    ["doc.md:7", "aether slice init greeter --group org.example", undefined, "http://127.0.0.1:8071"],
    [
      "doc.md:8",
      `curl -s -X POST $APP/x -H 'content-type: application/json' -d '{\n  "a": 1 }'`,
      '{"ok":…}',
      "http://127.0.0.1:8071",
    ],
    ["doc.md:12", "curl -s http://127.0.0.1:8072/y", "hello", "http://127.0.0.1:8071"],
    ["doc.md:13", "curl -s http://127.0.0.1:8073/z", '{"a":1,"b":2}', "http://127.0.0.1:8071"],
  ]);
  throws(
    () => extractRunnable("```sh runnable\nkill -9 1234\n```", "d.md"),
    /d\.md:2: a runnable block holds only/,
  );
  throws(() => extractRunnable("```sh runnable\n# → x\n```", "d.md"), /d\.md:2: .* none is/);
  throws(() => extractRunnable("```sh runnable\ncurl -d '{\n```", "d.md"), /d\.md:2: the command's ' quote/);
});

Deno.test("docs: Forge's default ports are rewritten and … matches anything", () => {
  const forge = {
    api: ["http://127.0.0.1:40001", "http://127.0.0.1:40002"],
    app: ["http://127.0.0.1:40011"],
  };
  assertEquals(
    rewritePorts("curl 127.0.0.1:8071/a http://127.0.0.1:8082/b 127.0.0.1:8073 127.0.0.1:80710", forge),
    "curl 127.0.0.1:40011/a http://127.0.0.1:40002/b 127.0.0.1:8073 127.0.0.1:80710",
  );
  assert(outputMatches('{"greeting":"Hello, Ada!","id":"x-123"}', '{"greeting":"Hello, Ada!",…}'));
  assert(!outputMatches('{"greeting":"Hi"}', '{"greeting":"Hello, Ada!"}'));
});

Deno.test({
  name: "docs: every runnable command of README.md, docs/slices.md and examples/ecommerce/README.md works",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const perDoc: [string, DocCommand[]][] = [];
    for (const doc of DOCS) {
      perDoc.push([doc, extractRunnable(await Deno.readTextFile(`${ROOT}${doc}`), doc)]);
    }
    const total = perDoc.reduce((n, [, c]) => n + c.length, 0);
    console.log(`runnable commands: ${perDoc.map(([d, c]) => `${d} ${c.length}`).join(", ")}`);
    assert(total > 0, "no runnable block in the docs");

    const missing = await missingTools();
    assertEquals(
      missing,
      [],
      `the docs' commands need ${missing.join(" and ")} on PATH (Debian: apt-get install)`,
    );
    const work = await Deno.makeTempDir({ prefix: "aether-docs-" });
    const binDir = await aetherBinDir();
    const forgeDir = `${work}/forge`;
    await Deno.mkdir(forgeDir);
    await linkExamples(forgeDir);
    const started = Date.now();
    const forge = await startForge({
      cwd: forgeDir,
      binDir,
      args: ["--clean"],
      nodes: FORGE_NODES,
      minSlices: ECOMMERCE_SLICES,
      timeoutMs: FORGE_READY_MS,
    });
    console.log(
      `forge ready in ${Date.now() - started} ms: api ${forge.api.join(" ")}, app ${forge.app.join(" ")}`,
    );
    const failures: string[] = [];
    try {
      for (const [doc, commands] of perDoc) {
        // A fresh directory per document, with Forge's state and the examples linked in.
        const cwd = `${work}/${doc.replaceAll("/", "_")}`;
        await Deno.mkdir(cwd);
        await Deno.symlink(`${forgeDir}/.forge`, `${cwd}/.forge`);
        await linkExamples(cwd);
        for (const command of commands) {
          const result = await runDocCommand(command, { cwd, binDir, forge, timeoutMs: COMMAND_TIMEOUT_MS });
          const problem = resultProblem(command, result, forge);
          console.log(
            `${problem ? "FAIL" : "ok  "} ${command.where} (${result.ms} ms) ${
              command.command.split("\n")[0]
            }`,
          );
          if (problem) {
            failures.push(
              `${command.where}: ${command.command}\n  ${problem}\n  stdout: ${result.stdout.trim()}\n` +
                `  stderr: ${result.stderr.trim()}`,
            );
          }
        }
      }
    } finally {
      await forge.stop();
      await Deno.remove(work, { recursive: true }).catch(() => {});
      await Deno.remove(binDir, { recursive: true }).catch(() => {});
    }
    assertEquals(failures, [], `\n${failures.join("\n\n")}\n\nforge printed:\n${forge.output()}`);
  },
});
