/**
 * Folder boundaries: every import in runtime/, slices/, tests/ and examples/ is checked against the layer order
 * of ARCHITECTURE.md ("Layer order") and the rules below. It reads files and runs no code (well under a second).
 *
 * What counts as an import: static `import ... from "x"`, `import "x"`, `export ... from "x"` and dynamic
 * `import("x")` with a string literal. Comments and template literals are skipped (code generators write import
 * lines into templates). `npm:`, `node:`, `jsr:`, URL and import-map package specifiers (hono, ...) are
 * ignored; `@aether/slices` is slices/mod.ts and `@aether/slices/testing` is slices/testing.ts (deno.json).
 * Modules loaded by `new URL("...", import.meta.url)` (worker and child entries, fixtures) are not imports and
 * are not checked. Files under `fixtures/` are test data (slices, some deliberately broken) and are not scanned.
 *
 * A file's folder is its top folder: runtime/<name>/ with every subfolder in it (runtime/cluster/sim is part of
 * cluster), runtime/main.ts and runtime/launch.ts (the entry, "main"), slices/, tests/, examples/. Files in one
 * folder import each other freely, subfolders included.
 *
 * Rules for runtime/ and slices/ (code and the tests beside it alike):
 * 1. Layer order: a folder imports only folders of a lower rank in LAYER_RANK. Folders of one group (the same
 *    rank) may not import each other; where one must, the table orders the group. Runtime code never imports
 *    tests/ or examples/.
 * 2. Private files: a file whose name starts with `_`, or anything under a `_name/` directory, is private to
 *    its folder.
 * 3. Public faces: a cross-folder import names a `mod.ts`, the folder's own or a subfolder's (a subfolder such
 *    as runtime/cluster/sim may have a mod.ts of its own so that its importers do not load it through the
 *    folder's mod.ts; a subfolder without one is reached through the folder's mod.ts). The other faces are
 *    listed in EXTRA_FACES, and a folder's `testing.ts` (test helpers kept out of mod.ts) is a face for test
 *    code only.
 * Test code (`*_test.ts`, `_testing.ts`, `testing.ts`, and helpers under a `testdata/` directory) keeps the same
 * rules, may import its own folder's `_` files like any file there, and in addition may import:
 * - tests/_support/ (the shared test library: child processes, the partition proxy, the CLI runner, clusters),
 * - files under any `fixtures/` or `testdata/` directory (test data),
 * - the folders in TEST_CODE_MAY_ALSO_IMPORT through their mod.ts, whatever their rank.
 *
 * Rules for tests/ and examples/: they sit above every layer and may import any public file of any folder
 * (cross-module tests and benchmarks exercise pieces that are not on a folder's face), but never another
 * folder's `_` file. Their own helpers (tests/_support, tests/bench/_*.ts, examples/ecommerce/_testing.ts) are
 * private to them, which makes no difference to what those helpers may import.
 *
 * EXCEPTIONS lists the imports that break a rule on purpose, each with the reason; an exception no import uses
 * any more fails the test, so the list cannot go stale.
 */
import assert from "node:assert/strict";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

/**
 * The layer order of ARCHITECTURE.md ("Layer order"), lowest first: a folder may import only folders of a lower
 * rank. Change it there and here together. Folders listed before they exist (metrics, control, infra-host)
 * keep their place for when they arrive. Within "cli, loadgen, authoring" the CLI uses both others (`aether
 * load`, `aether slice build`), so they rank below it. Forge ranks above node: it starts node processes with the
 * node's launch contract (node/mod.ts: the narrow permissions and command line), and node imports nothing from
 * forge.
 */
export const LAYER_RANK: Readonly<Record<string, number>> = {
  core: 0,
  consensus: 1,
  net: 1,
  slices: 1,
  kv: 2,
  cluster: 3,
  model: 4,
  sandbox: 5,
  repository: 5,
  deployment: 6,
  invoke: 7,
  http: 8,
  metrics: 8,
  control: 9,
  "infra-host": 9,
  api: 10,
  loadgen: 11,
  authoring: 11,
  cli: 12,
  node: 13,
  forge: 14,
  main: 15,
};

/** Folders that sit above every layer: they may import any folder's public files. */
const TOP_FOLDERS = new Set(["tests", "examples"]);

/** Public faces besides mod.ts (and testing.ts for test code), with the reason each exists. */
const EXTRA_FACES: Readonly<Record<string, string>> = {
  "slices/host.ts":
    "the runtime's side of the SDK (manifest, config, the sandbox protocol); slices/mod.ts is " +
    "bundled into every slice and must stay free of npm, which the manifest's version ranges need (semver)",
};

/** Folders test code may import through their mod.ts whatever their rank, with the reason. */
const TEST_CODE_MAY_ALSO_IMPORT: Readonly<Record<string, string>> = {
  authoring: "tests build their fixture slices into bundles with buildSlice and writeBuiltSlice",
};

/** Imports that break a rule on purpose: `importer → imported file`, both from the root, and why. */
const EXCEPTIONS: Readonly<Record<string, string>> = {
  "runtime/sandbox/_child_main.ts → slices/_runtime.ts":
    "the process sandbox's entry runs the slice runtime " +
    "in a child without a config file or npm, so it cannot load slices/host.ts (semver through the manifest); " +
    "slices/mod.ts is the authors' SDK",
  "runtime/sandbox/_child_main.ts → slices/_isolation.ts":
    "the process sandbox's entry closes the storage and channels slices would share before the runtime starts " +
    "(the same code as slice Workers; the SDK's mod.ts is the authors' API)",
  "slices/_runtime.ts → runtime/core/trace.ts":
    "the slice runtime runs in that same child without npm, and " +
    "core/mod.ts loads semver (core/artifact.ts)",
};

/** Where the scan looks, relative to the repository root. */
const SCANNED = ["runtime", "slices", "tests", "examples"];
const SKIPPED_DIRS = new Set(["node_modules", ".forge", ".git", "dist", "fixtures"]);

/** The import map's entries for the project's own code (deno.json "imports"). */
const ALIASES: Readonly<Record<string, string>> = {
  "@aether/slices": "slices/mod.ts",
  "@aether/slices/testing": "slices/testing.ts",
};

export interface ImportSite {
  /** Importing file, relative to the repository root. */
  file: string;
  line: number;
  specifier: string;
  /** Imported file, relative to the repository root; undefined for packages (npm:, node:, hono, ...). */
  target: string | undefined;
}

export interface Violation {
  site: ImportSite;
  rule: "layer" | "private" | "mod.ts" | "unknown folder";
  message: string;
}

/**
 * Replaces comments and the contents of template literals with spaces (newlines kept, so line numbers hold),
 * leaving code and plain string literals. Regular expression literals are recognised by the token before the
 * slash, well enough for this code base; a quote inside one would otherwise open a string.
 */
export function maskCommentsAndTemplates(source: string): string {
  const out = source.split("");
  const blank = (from: number, to: number) => {
    for (let i = from; i < to; i++) if (out[i] !== "\n") out[i] = " ";
  };
  let i = 0;
  let lastToken = ""; // the last non-space character of code, to tell a regex from a division
  const templateDepth: number[] = []; // brace depth at each open `${`, for nested templates
  let braceDepth = 0;
  const skipString = (quote: string) => {
    let j = i + 1;
    while (j < source.length && source[j] !== quote && source[j] !== "\n") j += source[j] === "\\" ? 2 : 1;
    return j + 1;
  };
  /** Scans template text from `from` to its end or to a `${`; returns the index after it and which ended it. */
  const skipTemplateText = (from: number): { end: number; interpolation: boolean } => {
    let j = from;
    while (j < source.length) {
      if (source[j] === "\\") j += 2;
      else if (source[j] === "`") return { end: j + 1, interpolation: false };
      else if (source[j] === "$" && source[j + 1] === "{") return { end: j + 2, interpolation: true };
      else j++;
    }
    return { end: j, interpolation: false };
  };
  const enterTemplateText = (from: number) => {
    const { end, interpolation } = skipTemplateText(from);
    blank(from, end);
    if (interpolation) {
      templateDepth.push(braceDepth);
      braceDepth++;
    }
    i = end;
    lastToken = interpolation ? "{" : "`";
  };
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      const end = source.indexOf("\n", i);
      const stop = end === -1 ? source.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? source.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === "'" || c === '"') {
      i = skipString(c);
      lastToken = c;
    } else if (c === "`") {
      enterTemplateText(i + 1);
    } else if (c === "/" && (lastToken === "" || "(,=:[!&|?{};+-*%<>~^".includes(lastToken))) {
      // A regular expression literal: skip to its closing slash (outside a character class).
      let j = i + 1;
      let inClass = false;
      while (j < source.length && source[j] !== "\n") {
        if (source[j] === "\\") j += 2;
        else {
          if (source[j] === "[") inClass = true;
          else if (source[j] === "]") inClass = false;
          else if (source[j] === "/" && !inClass) break;
          j++;
        }
      }
      i = j + 1;
      lastToken = "/";
    } else {
      if (c === "{") braceDepth++;
      else if (c === "}") {
        braceDepth--;
        if (templateDepth.length > 0 && templateDepth.at(-1) === braceDepth) {
          templateDepth.pop();
          enterTemplateText(i + 1);
          continue;
        }
      }
      if (!/\s/.test(c)) lastToken = /[\w$]/.test(c) ? "a" : c;
      i++;
    }
  }
  return out.join("");
}

const STATIC_IMPORT =
  /^[ \t]*(?:import|export)(?:\s+type)?\s*[\w\s{},*$]*?\bfrom\s*(["'])([^"'\n]+)\1|^[ \t]*import\s*(["'])([^"'\n]+)\3/gm;
const DYNAMIC_IMPORT = /\bimport\s*\(\s*(["'])([^"'\n]+)\1\s*[,)]/g;

/** The specifiers a module imports, with the line each is on. */
export function importSpecifiers(source: string): { line: number; specifier: string }[] {
  const code = maskCommentsAndTemplates(source);
  const found: { index: number; specifier: string }[] = [];
  for (const match of code.matchAll(STATIC_IMPORT)) {
    const specifier = match[2] ?? match[4];
    found.push({ index: match.index + match[0].lastIndexOf(specifier), specifier });
  }
  for (const match of code.matchAll(DYNAMIC_IMPORT)) {
    found.push({ index: match.index + match[0].lastIndexOf(match[2]), specifier: match[2] });
  }
  const lineStarts = [0];
  for (let i = 0; i < code.length; i++) if (code[i] === "\n") lineStarts.push(i + 1);
  const lineOf = (index: number) => {
    let low = 0;
    let high = lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (lineStarts[mid] <= index) low = mid;
      else high = mid - 1;
    }
    return low + 1;
  };
  return found.sort((a, b) => a.index - b.index).map((f) => ({
    line: lineOf(f.index),
    specifier: f.specifier,
  }));
}

/** The file a specifier names, relative to the root, or undefined for a package or a URL. */
export function resolveSpecifier(file: string, specifier: string): string | undefined {
  if (specifier in ALIASES) return ALIASES[specifier];
  if (!specifier.startsWith("./") && !specifier.startsWith("../") && !specifier.startsWith("/")) {
    return undefined;
  }
  const absolute = specifier.startsWith("/") ? specifier : join(ROOT, file, "..", specifier);
  return relative(ROOT, absolute);
}

/** A file's folder: runtime/<name> (with its subfolders), "main" for runtime/*.ts, or the top directory. */
export function folderOf(file: string): string {
  const parts = file.split("/");
  if (parts[0] === "runtime") return parts.length === 2 ? "main" : parts[1];
  return parts[0];
}

/** The directory that holds a folder's files, for messages: runtime/kv, slices, runtime (for main). */
function folderPath(folder: string): string {
  if (folder === "main") return "runtime";
  return ["slices", "tests", "examples"].includes(folder) ? folder : `runtime/${folder}`;
}

/** Inside its folder, some directory or the file's own name starts with `_`. */
function isPrivate(file: string): boolean {
  const inside = file.split("/").slice(file.startsWith("runtime/") ? 2 : 1);
  return inside.some((part) => part.startsWith("_"));
}

const baseName = (file: string) => file.slice(file.lastIndexOf("/") + 1);
const inDirectory = (file: string, names: string[]) =>
  file.split("/").slice(0, -1).some((d) => names.includes(d));

/** Tests and their helpers: `*_test.ts`, `_testing.ts`, `testing.ts`, anything under a `testdata/` directory. */
export function isTestCode(file: string): boolean {
  const name = baseName(file);
  return /_test\.tsx?$/.test(name) || name === "_testing.ts" || name === "testing.ts" ||
    inDirectory(file, ["testdata"]);
}

/** The path to write in `file` for the module at `target` (both from the root): "../core/mod.ts". */
function specifierFor(file: string, target: string): string {
  const path = relative(join(ROOT, file, ".."), join(ROOT, target));
  return path.startsWith(".") ? path : `./${path}`;
}

/**
 * The faces to import instead of `target`, as `file` would write them: the nearest mod.ts above it within its
 * folder, and the folder's extra faces.
 */
function facesFor(file: string, target: string): string {
  const top = folderPath(folderOf(target));
  let dir = target.slice(0, target.lastIndexOf("/"));
  while (dir.length > top.length && !exists(`${dir}/mod.ts`)) dir = dir.slice(0, dir.lastIndexOf("/"));
  const faces = [`${dir.length > top.length ? dir : top}/mod.ts`];
  faces.push(...Object.keys(EXTRA_FACES).filter((face) => face.startsWith(`${top}/`)));
  return faces.map((face) => `"${specifierFor(file, face)}"`).join(" or ");
}

function rankText(folder: string): string {
  return `${folder} (rank ${LAYER_RANK[folder]})`;
}

/** Exceptions an import used, filled by `checkImport` so the test can find stale ones. */
const usedExceptions = new Set<string>();

/** The violations of one import; empty when it keeps the rules. */
export function checkImport(site: ImportSite): Violation[] {
  const { file, target } = site;
  if (target === undefined) return [];
  const from = folderOf(file);
  const to = folderOf(target);
  if (from === to) return [];
  const exception = `${file} → ${target}`;
  if (exception in EXCEPTIONS) {
    usedExceptions.add(exception);
    return [];
  }
  const testCode = isTestCode(file);
  if (testCode && (target.startsWith("tests/_support/") || inDirectory(target, ["fixtures", "testdata"]))) {
    return [];
  }
  const violations: Violation[] = [];
  const add = (rule: Violation["rule"], message: string) => violations.push({ site, rule, message });
  if (TOP_FOLDERS.has(to) && !TOP_FOLDERS.has(from)) {
    add(
      "layer",
      `runs up the layer order: ${from} imports ${target}; runtime code never imports tests/ or examples/ ` +
        `(test code may import tests/_support/ and fixtures/): move what it needs into ${folderPath(from)}`,
    );
    return violations;
  }
  const faces = facesFor(file, target);
  if (isPrivate(target)) {
    const testing = `"${specifierFor(file, `${folderPath(to)}/testing.ts`)}"`;
    add(
      "private",
      `reaches into another folder's private file: ${target} is private to ${folderPath(to)}; export what ` +
        `you need from ${faces} (test helpers: from ${testing}) and import it from there`,
    );
  }
  if (TOP_FOLDERS.has(from)) return violations;
  const unranked = [from, to].filter((folder) => !(folder in LAYER_RANK));
  for (const folder of unranked) {
    add("unknown folder", `folder ${folder} has no rank: add it to LAYER_RANK here and to ARCHITECTURE.md`);
  }
  if (unranked.length > 0) return violations;
  const testMayImport = testCode && to in TEST_CODE_MAY_ALSO_IMPORT;
  if (LAYER_RANK[from] <= LAYER_RANK[to] && !testMayImport) {
    const which = LAYER_RANK[from] === LAYER_RANK[to] ? "a folder of its own group" : "a higher folder";
    add(
      "layer",
      `runs up the layer order: ${rankText(from)} imports ${which}, ${rankText(to)}; move what it needs ` +
        `into ${folderPath(from)} or a folder below it, or have the caller pass it in`,
    );
  }
  const name = baseName(target);
  const isFace = name === "mod.ts" || target in EXTRA_FACES || (name === "testing.ts" && testCode);
  if (!isFace && !isPrivate(target)) {
    const hint = name === "testing.ts"
      ? `only test code (*_test.ts, _testing.ts, testing.ts) may import ${target}`
      : `import it from ${faces} instead (export it there if it is missing)`;
    add("mod.ts", `cross-folder import not through mod.ts: ${target}; ${hint}`);
  }
  return violations;
}

/** Every .ts and .tsx file under the scanned folders, relative to the root. */
export function scannedFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(join(ROOT, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory && !SKIPPED_DIRS.has(entry.name)) walk(path);
      else if (entry.isFile && /\.tsx?$/.test(entry.name)) out.push(path);
    }
  };
  for (const dir of SCANNED) {
    try {
      walk(dir);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return out.sort();
}

/** The violations in the whole tree (and the exceptions used, in `usedExceptions`). */
export function treeViolations(): Violation[] {
  const violations: Violation[] = [];
  for (const file of scannedFiles()) {
    const source = Deno.readTextFileSync(join(ROOT, file));
    for (const { line, specifier } of importSpecifiers(source)) {
      const target = resolveSpecifier(file, specifier);
      violations.push(...checkImport({ file, line, specifier, target }));
    }
  }
  return violations;
}

function report(violations: Violation[]): string {
  const lines = violations.map((v) =>
    `  ${v.site.file}:${v.site.line} → ${v.site.specifier}\n      ${v.message}`
  );
  return `${violations.length} import(s) break the folder rules (see tests/imports_test.ts and ` +
    `ARCHITECTURE.md "Layer order"):\n${lines.join("\n")}`;
}

Deno.test("every import keeps the layer order, the privacy of _ files and the public faces", () => {
  const violations = treeViolations();
  if (violations.length > 0) throw new Error(report(violations));
  const stale = Object.keys(EXCEPTIONS).filter((exception) => !usedExceptions.has(exception));
  assert.deepEqual(stale, [], "exceptions no import uses any more: remove them from EXCEPTIONS");
});

Deno.test("every runtime folder has a rank and a mod.ts; every extra face and alias is right", () => {
  const problems: string[] = [];
  for (const entry of Deno.readDirSync(join(ROOT, "runtime"))) {
    if (!entry.isDirectory) continue;
    if (!(entry.name in LAYER_RANK)) problems.push(`runtime/${entry.name} has no rank in LAYER_RANK`);
    if (!exists(`runtime/${entry.name}/mod.ts`)) problems.push(`runtime/${entry.name} has no mod.ts`);
  }
  for (const face of Object.keys(EXTRA_FACES)) if (!exists(face)) problems.push(`${face} does not exist`);
  const imports: Record<string, string> = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).imports;
  for (const [alias, path] of Object.entries(imports)) {
    if (path.startsWith("./") && ALIASES[alias] !== path.slice(2)) {
      problems.push(`deno.json maps ${alias} to ${path}: ALIASES here says ${ALIASES[alias]}`);
    }
  }
  assert.deepEqual(problems, []);
});

function exists(path: string): boolean {
  try {
    Deno.statSync(join(ROOT, path));
    return true;
  } catch {
    return false;
  }
}

// The checker itself: each rule fires on a made-up import, and each kind of import is found.

const site = (file: string, specifier: string): ImportSite => ({
  file,
  line: 1,
  specifier,
  target: resolveSpecifier(file, specifier),
});
const rules = (file: string, specifier: string) => checkImport(site(file, specifier)).map((v) => v.rule);

Deno.test("checker: an import up the layer order or into tests/ is a layer violation", () => {
  assert.deepEqual(rules("runtime/deployment/service.ts", "../api/mod.ts"), ["layer"]);
  assert.match(
    checkImport(site("runtime/deployment/service.ts", "../api/mod.ts"))[0].message,
    /deployment \(rank 6\) imports a higher folder, api \(rank 10\)/,
  );
  assert.deepEqual(rules("runtime/net/mesh.ts", "../consensus/mod.ts"), ["layer"], "same group");
  assert.deepEqual(rules("runtime/core/errors.ts", "@aether/slices"), ["layer"], "core is below slices");
  assert.deepEqual(rules("runtime/kv/state.ts", "../../tests/_support/child.ts"), ["layer"]);
  assert.deepEqual(rules("runtime/sandbox/host.ts", "../authoring/mod.ts"), ["layer"]);
});

Deno.test("checker: another folder's _ file is private, and a cross-folder import names a face", () => {
  assert.deepEqual(rules("runtime/kv/state.ts", "../core/_x.ts"), ["private"]);
  assert.deepEqual(rules("runtime/kv/state.ts", "../core/_x/y.ts"), ["private"]);
  assert.deepEqual(rules("runtime/kv/state.ts", "../core/errors.ts"), ["mod.ts"]);
  assert.match(
    checkImport(site("runtime/kv/state.ts", "../core/errors.ts"))[0].message,
    /"\.\.\/core\/mod\.ts"/,
  );
  assert.deepEqual(rules("runtime/kv/state.ts", "../core/mod.ts"), []);
  assert.deepEqual(rules("runtime/node/node.ts", "../cluster/sim/mod.ts"), [], "a subfolder's mod.ts");
  assert.deepEqual(rules("runtime/node/node.ts", "../cluster/sim/network.ts"), ["mod.ts"]);
  assert.deepEqual(rules("runtime/kv/state.ts", "./_btree.ts"), [], "own folder");
  assert.deepEqual(rules("runtime/cluster/sim/member.ts", "../_x.ts"), [], "subfolder of the same folder");
  assert.deepEqual(
    rules("runtime/deployment/x.ts", "../model/testing.ts"),
    ["mod.ts"],
    "testing.ts is for tests",
  );
  assert.deepEqual(rules("runtime/sandbox/x.ts", "../../slices/host.ts"), [], "an extra face");
  assert.deepEqual(rules("runtime/kv/state.ts", "npm:sorted-btree"), []);
  assert.deepEqual(rules("runtime/kv/state.ts", "sorted-btree"), []);
});

Deno.test("checker: test code may also import testing.ts, tests/_support, fixtures and authoring", () => {
  assert.deepEqual(rules("runtime/deployment/x_test.ts", "../model/testing.ts"), []);
  assert.deepEqual(rules("runtime/deployment/_testing.ts", "../model/testing.ts"), []);
  assert.deepEqual(rules("runtime/net/mesh_test.ts", "../../tests/_support/partition_proxy.ts"), []);
  assert.deepEqual(rules("slices/sdk_test.ts", "../runtime/sandbox/fixtures/order.ts"), []);
  assert.deepEqual(rules("runtime/sandbox/host_test.ts", "../authoring/mod.ts"), []);
  assert.deepEqual(rules("runtime/sandbox/host_test.ts", "../authoring/build.ts"), ["mod.ts"]);
  assert.deepEqual(rules("runtime/sandbox/host_test.ts", "../deployment/mod.ts"), ["layer"]);
  assert.deepEqual(rules("runtime/deployment/x_test.ts", "../invoke/_testing.ts"), ["private", "layer"]);
});

Deno.test("checker: tests and examples may import public files but no other folder's _ file", () => {
  assert.deepEqual(rules("tests/integration/x_test.ts", "../../runtime/kv/state.ts"), []);
  assert.deepEqual(rules("tests/integration/x_test.ts", "../_support/cluster.ts"), []);
  assert.deepEqual(rules("tests/bench/x.ts", "../../runtime/net/_frame.ts"), ["private"]);
  assert.deepEqual(rules("examples/ecommerce/x_test.ts", "../../slices/_types.ts"), ["private"]);
  assert.deepEqual(rules("examples/ecommerce/x_test.ts", "@aether/slices/testing"), []);
});

Deno.test("checker: finds static, export-from, side-effect and dynamic imports, not comments or templates", () => {
  const source = [
    'import { a } from "./a.ts";', // 1
    "import type {", // 2
    "  B,", // 3
    '} from "./b.ts";', // 4
    'export * from "./c.ts";', // 5
    'import "./d.ts";', // 6
    'const e = await import("./e.ts");', // 7
    '// import { f } from "./f.ts";', // 8
    "/* import { g } from './g.ts'; */", // 9
    "const h = `", // 10
    'import { h } from "./h.ts";', // 11
    '${"x" + `${1}`}`;', // 12
    "const re = /[\"']/g, half = 1 / 2;", // 13
    'export { i } from "./i.ts";', // 14
  ].join("\n");
  assert.deepEqual(importSpecifiers(source), [
    { line: 1, specifier: "./a.ts" },
    { line: 4, specifier: "./b.ts" },
    { line: 5, specifier: "./c.ts" },
    { line: 6, specifier: "./d.ts" },
    { line: 7, specifier: "./e.ts" },
    { line: 14, specifier: "./i.ts" },
  ]);
});
