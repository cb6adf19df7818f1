/**
 * Builds the dashboard into dist/, which is committed and which the node serves at `/`:
 * - the islands bundled for the browser by `deno bundle` (esbuild inside Deno) into one minified module,
 * - uPlot's stylesheet and ours in one file,
 * - the shell rendered to HTML with preact-render-to-string (the first paint, before any script runs),
 * each asset named by the hash of its bytes so the node can let browsers cache it for a year.
 *
 *   npx -y deno@2.9.6 task dashboard:build            writes dashboard/dist
 *   npx -y deno@2.9.6 task dashboard:build --check    exits 1, naming the files, when dist/ is stale
 */

import { renderToString } from "preact-render-to-string";
import { h } from "preact";
import type { ComponentType } from "preact";
import { Shell } from "./src/shell.tsx";
import { ForgeShell } from "./src/forge/shell.tsx";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const DIST = `${HERE}dist`;

export interface BuiltFile {
  /** Relative to dist/. */
  path: string;
  bytes: Uint8Array;
}

async function bundleClient(entry: string): Promise<Uint8Array> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--config",
      `${ROOT}deno.json`,
      "--platform=browser",
      "--minify",
      `${HERE}src/${entry}`,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const errors = new TextDecoder().decode(output.stderr).trim();
  if (!output.success) throw new Error(`deno bundle failed:\n${errors}`);
  if (output.stdout.length === 0) throw new Error(`deno bundle wrote nothing:\n${errors}`);
  return output.stdout;
}

async function styles(): Promise<Uint8Array> {
  const uplot = await Deno.readTextFile(`${ROOT}node_modules/uplot/dist/uPlot.min.css`);
  const ours = await Deno.readTextFile(`${HERE}src/style.css`);
  return new TextEncoder().encode(`${uplot.trim()}\n${ours}`);
}

async function hashName(stem: string, extension: string, bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  const hex = [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `assets/${stem}.${hex}.${extension}`;
}

function page(title: string, shell: ComponentType, script: string, stylesheet: string): string {
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    `<title>${title}</title>`,
    // No favicon request: it would go to the API (401) and show as an error in the console.
    '<link rel="icon" href="data:,">',
    `<link rel="stylesheet" href="/${stylesheet}">`,
    `<script type="module" src="/${script}"></script>`,
    "</head>",
    `<body>${renderToString(h(shell, {}))}</body>`,
    "</html>",
    "",
  ].join("\n");
}

/**
 * Every file of dist/, built in memory: the node's dashboard (index.html, app.*.js) and Forge's console
 * (forge.html, forge.*.js), sharing one stylesheet.
 */
export async function buildDashboard(): Promise<BuiltFile[]> {
  const css = await styles();
  const stylesheet = await hashName("app", "css", css);
  const app = await bundleClient("client.tsx");
  const appScript = await hashName("app", "js", app);
  const forge = await bundleClient("forge/client.tsx");
  const forgeScript = await hashName("forge", "js", forge);
  const encode = (text: string) => new TextEncoder().encode(text);
  return [
    { path: "index.html", bytes: encode(page("Aether", Shell, appScript, stylesheet)) },
    { path: "forge.html", bytes: encode(page("Aether Forge", ForgeShell, forgeScript, stylesheet)) },
    { path: appScript, bytes: app },
    { path: forgeScript, bytes: forge },
    { path: stylesheet, bytes: css },
  ];
}

async function readDist(): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const read = async (path: string) => files.set(path, await Deno.readFile(`${DIST}/${path}`));
  try {
    await read("index.html");
    await read("forge.html");
    for await (const entry of Deno.readDir(`${DIST}/assets`)) {
      if (entry.isFile) await read(`assets/${entry.name}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return files;
}

/** The files of dist/ that differ from a fresh build: missing, changed or left over. */
export async function staleFiles(built: BuiltFile[]): Promise<string[]> {
  const current = await readDist();
  const stale: string[] = [];
  for (const file of built) {
    const bytes = current.get(file.path);
    if (!bytes) stale.push(`${file.path} (missing)`);
    else if (bytes.length !== file.bytes.length || bytes.some((b, i) => b !== file.bytes[i])) {
      stale.push(`${file.path} (changed)`);
    }
  }
  for (const path of current.keys()) {
    if (!built.some((f) => f.path === path)) stale.push(`${path} (left over)`);
  }
  return stale;
}

async function write(built: BuiltFile[]): Promise<void> {
  await Deno.remove(DIST, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  await Deno.mkdir(`${DIST}/assets`, { recursive: true });
  for (const file of built) await Deno.writeFile(`${DIST}/${file.path}`, file.bytes);
}

async function gzipSize(bytes: Uint8Array): Promise<number> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return (await new Response(stream).arrayBuffer()).byteLength;
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  const unknown = Deno.args.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    console.error(`dashboard:build: unknown argument ${unknown[0]} (the only flag is --check)`);
    Deno.exit(2);
  }
  const built = await buildDashboard();
  if (check) {
    const stale = await staleFiles(built);
    if (stale.length > 0) {
      console.error(
        `dashboard/dist is stale: ${stale.join(", ")}\nRebuild it: npx -y deno@2.9.6 task dashboard:build`,
      );
      Deno.exit(1);
    }
    console.log("dashboard/dist is up to date");
  } else {
    await write(built);
    for (const file of built) {
      console.log(
        `${file.path.padEnd(28)} ${String(file.bytes.length).padStart(7)} B  gzip ${await gzipSize(
          file.bytes,
        )} B`,
      );
    }
  }
}
