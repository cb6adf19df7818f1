/**
 * Mistakes in a command's own arguments, found before any request: one line naming what was wrong, exit code
 * 2 (usage), never a stack trace (an operator reads "error: Error: ... at parseRate (file:///...)" as a
 * crash).
 */

import assert from "node:assert/strict";
import { runCli } from "../main.ts";
import { CliError } from "../client.ts";
import { withQuotingHint } from "./config.ts";

/** A port nothing listens on: a command that reached the network would fail with exit code 3 instead. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Runs one command line in process; its exit code and what it wrote to stderr. */
async function run(words: string[]): Promise<{ code: number; stderr: string }> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...parts: unknown[]) => lines.push(parts.map(String).join(" "));
  try {
    const code = await runCli(["--connect", `127.0.0.1:${closedPort()}`, "--token", "t", ...words]);
    return { code, stderr: lines.join("\n") };
  } finally {
    console.error = original;
  }
}

const CASES: Array<{ words: string[]; says: RegExp }> = [
  { words: ["config", "set", "org.example:greeter", "greeting"], says: /"greeting" is not key=value/ },
  { words: ["config", "set", "org.example:greeter", "=5"], says: /"=5" is not key=value/ },
  { words: ["ratelimit", "set", "api"], says: /--rate is required/ },
  { words: ["ratelimit", "set", "api", "--rate", "fast"], says: /--rate "fast" is not N\/s/ },
  {
    words: ["ratelimit", "set", "api", "--rate", "1/m"],
    says: /"1\/m" is 0\.017 per second; a limit is a whole number of permits per second >= 1 \(e\.g\. 60\/m/,
  },
  { words: ["ratelimit", "set", "api", "--rate", "10/s", "--burst", "many"], says: /--burst "many"/ },
  {
    words: ["secret", "set", "db-password", "--file", "/nonexistent/secret.txt"],
    says: /\/nonexistent\/secret/,
  },
  { words: ["aspect", "set", "org.example:greeter/hello", "weird"], says: /mode "weird" is not one of/ },
  { words: ["topics", "show", "orders"], says: /topic "orders" must be <group>\/<topic>/ },
  { words: ["db", "show", "orders"], says: /database "orders" must be <group>\/<name>/ },
  { words: ["jobs", "history", "nightly"], says: /"nightly" must be <group>\/<name>/ },
  {
    words: ["infra", "cache", "set", "org.example", "links", "--default-ttl", "soon"],
    says: /--default-ttl "soon"/,
  },
  {
    words: ["infra", "cache", "set", "org.example", "links", "--max-bytes", "lots"],
    says: /--max-bytes "lots"/,
  },
];

Deno.test("cli usage errors: a bad argument is one line naming it, exit code 2, no stack trace", async () => {
  for (const { words, says } of CASES) {
    const { code, stderr } = await run(words);
    const line = words.join(" ");
    assert.match(stderr, says, `aether ${line}: ${stderr}`);
    assert.doesNotMatch(stderr, /\n\s+at |Error: /, `aether ${line} printed a stack trace:\n${stderr}`);
    assert.equal(code, 2, `aether ${line}: exit code ${code}, stderr ${stderr}`);
  }
});

Deno.test("cli config set: a text field given a value that reads as JSON is told how to quote it", () => {
  const refused = new CliError(
    "400 bad request: invalid configuration: config of org.example:greeter:1.0.0.version " +
      "expected a string, got 1",
  );
  const hinted = withQuotingHint(refused, ["limit=5", "version=1.0"]) as CliError;
  assert.match(
    hinted.message,
    /expected a string, got 1\n\(to set the text 1\.0, quote it: version='"1\.0"'\)$/,
  );
  assert.equal(hinted.exitCode, refused.exitCode);
  const other = new CliError("400 bad request: ... limit must be at most 100, got 500");
  assert.equal(withQuotingHint(other, ["limit=500"]), other, "other refusals unchanged");
});
