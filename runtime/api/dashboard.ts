/**
 * The dashboard's static files on the api port: `/` (the server-rendered shell) and `/assets/*` (the bundled
 * islands and styles, named by their content hash). The node reads the built directory (dashboard/dist, made by
 * `deno task dashboard:build`) once at start and hands it here as a typed value; nothing here imports the
 * dashboard's source, and nothing is read from disk per request.
 *
 * The files are public (a browser navigation carries no token): they hold no data, and every call the page
 * makes goes through the API with the caller's token and the API's Host and Origin checks. They are served
 * outside the role table for that reason (it lists API endpoints, each of which needs or may skip a token).
 */

import { AetherError, problemResponse as problemAnswer } from "../core/mod.ts";

/** One built file, ready to send. */
export interface DashboardFile {
  body: Uint8Array<ArrayBuffer>;
  /** The same bytes gzip'd, sent to browsers that accept it (smaller than `body`, else absent). */
  gzip?: Uint8Array<ArrayBuffer>;
  contentType: string;
  /** Strong validator: a hash of the bytes. */
  etag: string;
  /** Content-hashed asset names never change meaning: cached for a year. The shell is revalidated each time. */
  immutable: boolean;
}

/** The built dashboard by URL path (`/` and `/assets/<name>`). */
export interface DashboardAssets {
  files: ReadonlyMap<string, DashboardFile>;
  /** Where they were read from (for messages). */
  dir: string;
}

/** The built directory holds at most this many files (a stray large directory is refused, not served). */
export const MAX_DASHBOARD_FILES = 64;
/** Largest single built file. */
export const MAX_DASHBOARD_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Only the page's own origin: scripts, styles, images, fetches and the status WebSocket (CSP 3 `'self'` covers
 * ws:/wss: to the same host). No inline script or style, no frames, no plugins; nothing leaves the cluster.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".json": "application/json",
};

/**
 * Reads the built dashboard: the page served at `/` (`index.html`, the node's dashboard; Forge serves
 * `forge.html`, its console) and every file of `assets/`. A missing directory is an error naming it and the
 * command that builds it.
 */
export async function readDashboardAssets(dir: string, page = "index.html"): Promise<DashboardAssets> {
  const files = new Map<string, DashboardFile>();
  const index = await readBuilt(dir, page);
  files.set("/", await prepare(page, index, false));
  for await (const entry of Deno.readDir(`${dir}/assets`)) {
    if (!entry.isFile) continue;
    if (files.size >= MAX_DASHBOARD_FILES) {
      throw new Error(`${dir}/assets: more than ${MAX_DASHBOARD_FILES} files; is this the built dashboard?`);
    }
    files.set(
      `/assets/${entry.name}`,
      await prepare(entry.name, await readBuilt(dir, `assets/${entry.name}`), true),
    );
  }
  return { files, dir };
}

async function readBuilt(dir: string, name: string): Promise<Uint8Array<ArrayBuffer>> {
  const path = `${dir}/${name}`;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `the dashboard is not built: ${path} is missing (run: npx -y deno@2.9.6 task dashboard:build)`,
      );
    }
    throw e;
  }
  if (bytes.length > MAX_DASHBOARD_FILE_BYTES) {
    throw new Error(
      `${path}: ${bytes.length} bytes, more than the ${MAX_DASHBOARD_FILE_BYTES} a dashboard file may be`,
    );
  }
  return bytes;
}

async function prepare(
  name: string,
  body: Uint8Array<ArrayBuffer>,
  immutable: boolean,
): Promise<DashboardFile> {
  const extension = name.slice(name.lastIndexOf("."));
  const contentType = CONTENT_TYPES[extension] ?? "application/octet-stream";
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
  const etag = `"${[...digest.slice(0, 12)].map((b) => b.toString(16).padStart(2, "0")).join("")}"`;
  const gzip = await gzipBytes(body);
  return { body, contentType, etag, immutable, ...(gzip.length < body.length ? { gzip } : {}) };
}

async function gzipBytes(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Whether a request is for the dashboard rather than the API. */
export function isDashboardPath(path: string): boolean {
  return path === "/" || path === "/index.html" || path.startsWith("/assets/");
}

/**
 * Answers a GET or HEAD for a dashboard file: gzip when the browser accepts it, 304 when its copy is current,
 * and the CSP and hardening headers on every answer. Other methods get 405 naming what is allowed.
 */
export function dashboardResponse(assets: DashboardAssets | Error, request: Request): Response {
  const url = new URL(request.url);
  if (request.method !== "GET" && request.method !== "HEAD") {
    const message = `${request.method} ${url.pathname}: the dashboard's files are read with GET or HEAD only`;
    return problem(new AetherError("bad_request", message), url.pathname, { allow: "GET, HEAD" });
  }
  if (assets instanceof Error) return problem(new AetherError("unavailable", assets.message), url.pathname);
  const path = url.pathname === "/index.html" ? "/" : url.pathname;
  const file = assets.files.get(path);
  if (!file) return problem(new AetherError("not_found", `no dashboard file ${url.pathname}`), url.pathname);
  const headers = new Headers({
    "content-type": file.contentType,
    etag: file.etag,
    "cache-control": file.immutable ? "public, max-age=31536000, immutable" : "no-cache",
    "content-security-policy": DASHBOARD_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    vary: "Accept-Encoding",
  });
  if (matches(request.headers.get("if-none-match"), file.etag)) {
    return new Response(null, { status: 304, headers });
  }
  const gzip = file.gzip !== undefined && acceptsGzip(request.headers.get("accept-encoding"));
  const body = gzip ? file.gzip! : file.body;
  if (gzip) headers.set("content-encoding", "gzip");
  headers.set("content-length", String(body.length));
  return new Response(request.method === "HEAD" ? null : body, { status: 200, headers });
}

function matches(ifNoneMatch: string | null, etag: string): boolean {
  if (ifNoneMatch === null) return false;
  return ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag || tag.trim() === "*");
}

function acceptsGzip(acceptEncoding: string | null): boolean {
  if (acceptEncoding === null) return false;
  return acceptEncoding.split(",").some((part) => {
    const [name, ...params] = part.trim().split(";");
    if (name.trim().toLowerCase() !== "gzip") return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

function problem(
  error: AetherError,
  path: string,
  extraHeaders: Record<string, string> = {},
): Response {
  return problemAnswer(error, {
    fields: { instance: path },
    headers: {
      "content-security-policy": DASHBOARD_CSP,
      "x-content-type-options": "nosniff",
      ...extraHeaders,
    },
  });
}
