/**
 * The documentation's runnable commands: extraction from Markdown, and running them against a Forge cluster.
 *
 * The marker: a fenced code block whose info string has the word `runnable` after the language
 * (```` ```sh runnable ````; GitHub still highlights it by the first word). In such a block:
 * - a line starting with `aether ` or `curl ` is a command; it continues over lines ending in `\` and over
 *   lines inside an open quote (a JSON body spread over lines);
 * - `NAME=value` sets a variable for the block's later commands (`APP=http://127.0.0.1:8071`);
 * - `# → text` on the line after a command (or at the end of the command's own line) is output the command
 *   must print: the text with every `…` standing for anything, compared after trimming; it continues on the
 *   lines right after it that start with `#` and two or more spaces (joined without the `#` and spaces, so
 *   a long JSON answer can be split anywhere);
 * - other `#` lines are comments; blank lines are ignored; anything else is an error naming the file and line
 *   (a runnable block must not hold commands the test would silently skip).
 * Every command must exit 0; a curl command must also get a 2xx status. Addresses of Forge's default ports
 * (127.0.0.1:8081.. for management, 127.0.0.1:8071.. for applications) are rewritten to the ports the test's
 * Forge bound, so the docs show what a user sees.
 */

export interface DocCommand {
  /** `README.md:42`: where the command starts. */
  where: string;
  /** The command as a shell runs it (continuations joined, trailing comment removed). */
  command: string;
  /** Output the command must print (`…` matches anything). */
  expected?: string;
  /** Variables set earlier in the same block. */
  env: Record<string, string>;
}

const FENCE = /^(\s*)(`{3,}|~{3,})(.*)$/;
const ASSIGNMENT = /^([A-Z_][A-Z0-9_]*)=(\S+)$/;
const EXPECTED = "# → ";
const EXPECTED_CONTINUED = /^#\s{2,}\S/;

/** Where a `#` outside quotes (preceded by whitespace) starts a comment, or -1; and whether a quote is open. */
function scanShell(text: string): { commentAt: number; openQuote: string | null } {
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"') i++;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "\\") i++;
    else if (c === "#" && (i === 0 || /\s/.test(text[i - 1]))) return { commentAt: i, openQuote: null };
  }
  return { commentAt: -1, openQuote: quote };
}

/** Extracts the commands of every runnable block of one Markdown file, in order. */
export function extractRunnable(markdown: string, file: string): DocCommand[] {
  const lines = markdown.split("\n");
  const commands: DocCommand[] = [];
  let i = 0;
  while (i < lines.length) {
    const open = FENCE.exec(lines[i]);
    i++;
    if (!open) continue;
    const fence = open[2];
    const runnable = open[3].trim().split(/\s+/).slice(1).includes("runnable");
    const body: { text: string; line: number }[] = [];
    while (i < lines.length && !lines[i].trimStart().startsWith(fence)) {
      body.push({ text: lines[i], line: i + 1 });
      i++;
    }
    i++; // the closing fence
    if (runnable) commands.push(...blockCommands(body, file));
  }
  return commands;
}

function blockCommands(body: { text: string; line: number }[], file: string): DocCommand[] {
  const out: DocCommand[] = [];
  const env: Record<string, string> = {};
  for (let k = 0; k < body.length; k++) {
    const text = body[k].text.trim();
    const where = `${file}:${body[k].line}`;
    if (text === "") continue;
    if (text.startsWith(EXPECTED.trim())) {
      const last = out.at(-1);
      if (!last || last.expected !== undefined) {
        throw new Error(`${where}: "${EXPECTED.trim()}" names the output of the command just above; none is`);
      }
      last.expected = text.slice(EXPECTED.trim().length).trim();
      while (k + 1 < body.length && EXPECTED_CONTINUED.test(body[k + 1].text.trim())) {
        last.expected += body[++k].text.trim().slice(1).trim();
      }
      continue;
    }
    if (text.startsWith("#")) continue;
    const assignment = ASSIGNMENT.exec(text);
    if (assignment) {
      env[assignment[1]] = assignment[2];
      continue;
    }
    if (!text.startsWith("aether ") && !text.startsWith("curl ")) {
      throw new Error(
        `${where}: a runnable block holds only aether and curl commands, NAME=value lines and comments; ` +
          `found: ${text}`,
      );
    }
    // Join continuations: a trailing backslash, or a quote still open at the end of the line.
    let command = body[k].text.trim();
    while (k + 1 < body.length) {
      const { commentAt, openQuote } = scanShell(command);
      if (openQuote) command += "\n" + body[++k].text;
      else if (commentAt < 0 && command.endsWith("\\")) {
        command = command.slice(0, -1) + body[++k].text.trim();
      } else break;
    }
    const { commentAt, openQuote } = scanShell(command);
    if (openQuote) throw new Error(`${where}: the command's ${openQuote} quote is never closed`);
    let expected: string | undefined;
    if (commentAt >= 0) {
      const comment = command.slice(commentAt);
      if (comment.startsWith(EXPECTED)) expected = comment.slice(EXPECTED.length).trim();
      command = command.slice(0, commentAt).trimEnd();
    }
    out.push({ where, command, expected, env: { ...env } });
  }
  return out;
}

/** Forge's ports in the docs (8081.. management, 8071.. application) mapped to the ones a test run bound. */
export interface ForgeAddresses {
  api: string[];
  app: string[];
}

/** Rewrites `127.0.0.1:808N` and `127.0.0.1:807N` to node N's actual management and application addresses. */
export function rewritePorts(text: string, forge: ForgeAddresses): string {
  return text.replace(/127\.0\.0\.1:80([78])([1-9])\b/g, (all, kind: string, n: string) => {
    const list = kind === "8" ? forge.api : forge.app;
    const url = list[Number(n) - 1];
    return url ? new URL(url).host : all;
  });
}

/** Whether `output` holds `expected`, where each `…` in `expected` stands for anything. */
export function outputMatches(output: string, expected: string): boolean {
  const pieces = expected.split("…").map((p) => p.trim()).filter((p) => p !== "");
  let from = 0;
  for (const piece of pieces) {
    const at = output.indexOf(piece, from);
    if (at < 0) return false;
    from = at + piece.length;
  }
  return true;
}

const STATUS_MARK = "@@docs-test-status=";

/** The tools the docs' commands need besides `aether`, missing ones named (empty: all there). */
export async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const tool of ["bash", "curl"]) {
    try {
      const { success } = await new Deno.Command("sh", {
        args: ["-c", `command -v ${tool}`],
        stdout: "null",
        stderr: "null",
      }).output();
      if (!success) missing.push(tool);
    } catch {
      missing.push(tool);
    }
  }
  return missing;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The HTTP status a curl command got. */
  httpStatus?: number;
  ms: number;
}

/**
 * Runs one command with bash in `cwd` (PATH starting with `binDir`, where `aether` is). A curl command gets
 * `--write-out` appended so its status can be checked without changing what it prints.
 */
export async function runDocCommand(
  doc: DocCommand,
  options: { cwd: string; binDir: string; forge: ForgeAddresses; timeoutMs: number },
): Promise<CommandResult> {
  let command = rewritePorts(doc.command, options.forge);
  const isCurl = command.startsWith("curl ");
  if (isCurl) command += ` --write-out '\\n${STATUS_MARK}%{http_code}\\n'`;
  // The docs rely on the CLI finding Forge by itself: a stray AETHER_CONNECT would point it elsewhere.
  const { AETHER_CONNECT: _ignored, ...inherited } = Deno.env.toObject();
  const env: Record<string, string> = {
    ...inherited,
    NO_COLOR: "1",
    PATH: `${options.binDir}:${Deno.env.get("PATH") ?? ""}`,
  };
  for (const [name, value] of Object.entries(doc.env)) env[name] = rewritePorts(value, options.forge);
  const started = Date.now();
  const child = new Deno.Command("bash", {
    args: ["-o", "pipefail", "-c", command],
    cwd: options.cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, options.timeoutMs);
  const output = await child.output().finally(() => clearTimeout(timer));
  let stdout = new TextDecoder().decode(output.stdout);
  let httpStatus: number | undefined;
  if (isCurl) {
    const at = stdout.lastIndexOf(`\n${STATUS_MARK}`);
    if (at >= 0) {
      httpStatus = Number(stdout.slice(at + 1 + STATUS_MARK.length).trim());
      stdout = stdout.slice(0, at);
    }
  }
  return {
    code: output.code,
    stdout,
    stderr: new TextDecoder().decode(output.stderr),
    httpStatus,
    ms: Date.now() - started,
  };
}

/** What is wrong with a command's result, or null when it did what the docs say. */
export function resultProblem(doc: DocCommand, result: CommandResult, forge: ForgeAddresses): string | null {
  if (result.code !== 0) return `exited with ${result.code}`;
  if (result.httpStatus !== undefined && (result.httpStatus < 200 || result.httpStatus > 299)) {
    return `answered HTTP ${result.httpStatus}`;
  }
  if (doc.expected !== undefined) {
    const expected = rewritePorts(doc.expected, forge);
    if (!outputMatches(result.stdout, expected)) return `printed something else than: ${expected}`;
  }
  return null;
}
