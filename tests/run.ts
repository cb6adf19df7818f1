/**
 * The project's one test command (`deno task test`): format check, lint, type check, then every test.
 * Ends with the plain line `N passed, N failed` that CI reads.
 *
 * Unit tests (`*_test.ts` next to the code) run in parallel; multi-process tests (under tests/integration and
 * tests/e2e, and any `*_process_test.ts`) run one file at a time, because on a 2-core machine their timing
 * matters.
 */

const deno = Deno.execPath();
const env = { NO_COLOR: "1", RUST_BACKTRACE: "0" };
let passed = 0;
let failed = 0;
const failures: string[] = [];

async function run(label: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  console.log(`\n=== ${label}: deno ${args.join(" ")}`);
  const child = new Deno.Command(deno, { args, env, stdout: "piped", stderr: "piped", stdin: "null" })
    .spawn();
  const decoder = new TextDecoder();
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>, sink: typeof Deno.stdout) => {
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      await sink.write(chunk);
    }
  };
  const [status] = await Promise.all([
    child.status,
    pump(child.stdout, Deno.stdout),
    pump(child.stderr, Deno.stderr),
  ]);
  return { ok: status.success, output };
}

async function check(label: string, args: string[]): Promise<void> {
  const { ok } = await run(label, args);
  if (ok) passed++;
  else {
    failed++;
    failures.push(label);
  }
}

/** Reads deno test's summary line: `ok | 3 passed (2 steps) | 0 failed ...`. */
async function tests(label: string, args: string[]): Promise<void> {
  const { ok, output } = await run(label, args);
  const summary = [...output.matchAll(/(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/g)].at(-1);
  if (!summary) {
    // Nothing ran (for example a file did not load): count it as one failure.
    failed++;
    failures.push(`${label}: no test summary`);
    return;
  }
  passed += Number(summary[1]);
  failed += Number(summary[2]);
  if (!ok) failures.push(label);
}

function files(root: string, match: (path: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory && !["node_modules", ".forge", ".git", "dist"].includes(entry.name)) walk(path);
      else if (entry.isFile && match(path)) out.push(path);
    }
  };
  walk(root);
  return out.sort();
}

const testPermissions = ["-A", "--unstable-worker-options"];

// Node processes run with --cached-only: install every dependency before anything starts one.
await check("install", ["install"]);
await check("format", ["fmt", "--check"]);
await check("lint", ["lint"]);
// Two programs: the dashboard's browser code (Preact's JSX types pull in the DOM library, whose stream types
// differ from Deno's) is checked apart from the runtime, the tests and the tools.
const typeChecked = (p: string) => /\.(ts|tsx)$/.test(p) && !p.includes("/fixtures/");
const isDashboard = (p: string) => p.startsWith("./dashboard/");
await check("type check", ["check", ...files(".", (p) => typeChecked(p) && !isDashboard(p))]);
await check("type check (dashboard)", ["check", ...files("./dashboard", typeChecked)]);

const isSerial = (p: string) => /\/(integration|e2e)\//.test(p) || p.endsWith("_process_test.ts");
const unit = files(".", (p) => p.endsWith("_test.ts") && !p.startsWith("./tests/") && !isSerial(p));
const crossModule = files("./tests", (p) => p.endsWith("_test.ts") && !/\/browser\//.test(p) && !isSerial(p));
if (unit.length + crossModule.length > 0) {
  await tests("unit tests", ["test", ...testPermissions, "--parallel", ...unit, ...crossModule]);
}
for (const file of files(".", (p) => p.endsWith("_test.ts") && isSerial(p))) {
  await tests(`multi-process: ${file}`, ["test", ...testPermissions, file]);
}

if (failures.length > 0) console.log(`\nfailed: ${failures.join("; ")}`);
console.log(`\n${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
