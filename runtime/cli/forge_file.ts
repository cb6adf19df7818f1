/**
 * `.forge/forge.json`: where a running Forge records its nodes (Forge writes it, the CLI reads it). The CLI
 * uses it when neither `--connect` nor `AETHER_CONNECT` says which node to talk to, looking in the current
 * directory and its parents, the way git finds its repository.
 *
 *   {"pid": 4242, "control": "http://127.0.0.1:8888",
 *    "nodes": [{"id": "n1", "api": "127.0.0.1:8081", "app": "http://127.0.0.1:8071", "running": true}, ...]}
 */

import { dirname, join } from "node:path";

/** Where the file lives relative to the directory Forge was started in. */
export const FORGE_FILE = join(".forge", "forge.json");
/** Larger than any real file (a few hundred bytes per node): refuse before parsing garbage. */
const MAX_FORGE_FILE_BYTES = 1024 * 1024;

export interface ForgeNodeEntry {
  id: string;
  /** The node's management API, `host:port` or a URL. */
  api: string;
  /** Its application HTTP base URL. */
  app?: string;
  running?: boolean;
  [extra: string]: unknown;
}

export interface ForgeFile {
  /** Forge's own process id. */
  pid: number;
  /** Forge's control endpoint (chaos commands, status). */
  control?: string;
  nodes: ForgeNodeEntry[];
  [extra: string]: unknown;
}

/** Checks the file's shape; the error names the file and the field. */
export function parseForgeFile(text: string, path: string): ForgeFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not JSON: ${(e as Error).message}`);
  }
  const file = value as ForgeFile;
  if (typeof value !== "object" || value === null || !Array.isArray(file.nodes)) {
    throw new Error(`${path}: expected an object with a "nodes" array`);
  }
  file.nodes.forEach((node, i) => {
    if (typeof node !== "object" || node === null || typeof node.api !== "string" || node.api === "") {
      throw new Error(`${path}: nodes[${i}].api must be a "host:port" string`);
    }
    if (typeof node.id !== "string") throw new Error(`${path}: nodes[${i}].id must be a string`);
  });
  return file;
}

/** The nearest `.forge/forge.json` from `startDir` upwards, or null when there is none (or it is unreadable). */
export function findForgeFile(startDir: string): { path: string; forge: ForgeFile } | null {
  for (let dir = startDir;; dir = dirname(dir)) {
    const path = join(dir, FORGE_FILE);
    let text: string | undefined;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && info.size <= MAX_FORGE_FILE_BYTES) text = Deno.readTextFileSync(path);
    } catch {
      // Not here (or not readable): look further up.
    }
    if (text !== undefined) return { path, forge: parseForgeFile(text, path) };
    if (dirname(dir) === dir) return null;
  }
}

/** The API addresses to try, running nodes first, each in the file's order. */
export function forgeApiAddresses(forge: ForgeFile): string[] {
  const running = forge.nodes.filter((n) => n.running !== false).map((n) => n.api);
  const stopped = forge.nodes.filter((n) => n.running === false).map((n) => n.api);
  return [...running, ...stopped];
}
