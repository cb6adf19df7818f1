/**
 * `.forge/forge.json`: where a running Forge tells others about itself. The CLI reads `nodes[].api` to find the
 * cluster of this directory; `aether forge <command>` reads `control`; a second Forge reads `pid` and `control`
 * to refuse to start. Written whenever something in it changes (atomically: a temporary file renamed over it)
 * and removed when Forge stops cleanly.
 */

import type { ForgeFile, ForgeNodeEntry } from "../cli/mod.ts";
import type { Fault } from "./faults.ts";

export const FORGE_DIR = ".forge";
export const STATE_FILE = `${FORGE_DIR}/forge.json`;
/** How long a control request of another process may take before Forge counts as not running. */
const PROBE_TIMEOUT_MS = 1_500;

/** What Forge writes: the CLI's `ForgeNodeEntry` (the part it reads) with every field present. */
export interface ForgeNodeState extends ForgeNodeEntry {
  /** `http://127.0.0.1:8071`: the application HTTP port. */
  app: string;
  /** The node's own mesh port. */
  cluster: number;
  pid: number | null;
  running: boolean;
  restarts: number;
}

export interface ForgeState extends ForgeFile {
  /** `http://127.0.0.1:<port>`: the control channel. */
  control: string;
  nodes: ForgeNodeState[];
  faults: Fault[];
  startedAt: string;
  restart: "always" | "never";
  example: string | null;
}

export async function writeState(state: ForgeState, path = STATE_FILE): Promise<void> {
  const temporary = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(temporary, JSON.stringify(state, null, 2) + "\n");
  await Deno.rename(temporary, path);
}

export async function readState(path = STATE_FILE): Promise<ForgeState | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return null;
  }
  try {
    const state = JSON.parse(text) as ForgeState;
    if (typeof state.pid !== "number" || typeof state.control !== "string" || !Array.isArray(state.nodes)) {
      return null;
    }
    return state;
  } catch {
    return null;
  }
}

export async function removeState(path = STATE_FILE): Promise<void> {
  await Deno.remove(path).catch(() => {});
}

/** Whether the Forge that wrote `state` answers on its control channel as itself. */
export async function isAlive(state: ForgeState): Promise<boolean> {
  try {
    const response = await fetch(`${state.control}/status`, {
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    if (!response.ok) {
      await response.body?.cancel();
      return false;
    }
    const body = await response.json() as { pid?: number };
    return body.pid === state.pid;
  } catch {
    return false;
  }
}

/**
 * The running Forge of this directory, or null. A forge.json whose Forge does not answer is stale (it was
 * killed): it is removed, so a new Forge can start.
 */
export async function runningForge(path = STATE_FILE): Promise<ForgeState | null> {
  const state = await readState(path);
  if (!state) return null;
  if (await isAlive(state)) return state;
  await removeState(path);
  return null;
}
