/**
 * What every island reads: the caller, the cluster's status and slices, the live feed and the figures the
 * sparklines draw. Islands hydrate separately and share these signals, so one update redraws each of them.
 *
 * Live data: the status WebSocket when the node offers it; polling of the same API calls otherwise, and only
 * then (no page polls while the socket is up).
 */

import { batch, computed, signal } from "@preact/signals";
import { ApiError, get, storeToken, token } from "./api.ts";

export type Role = "viewer" | "operator" | "admin";

export interface Caller {
  tokenId: string;
  tokenName: string;
  role: Role;
}

export interface Member {
  id: string;
  connected: boolean;
}

export interface ClusterStatus {
  nodeId: string;
  leader: { nodeId: string; view?: number } | null;
  isLeader: boolean;
  ready: boolean;
  quorum: boolean;
  members: Member[];
  revision: number;
  phase: number;
  uptimeSeconds: number;
}

export interface Instance {
  node: string;
  n: number;
  version: string;
  state: string;
  connected: boolean;
  updatedAt: number;
  reason?: string;
}

export interface Slice {
  slice: string;
  version?: string;
  desired: number;
  active: number;
  settled: boolean;
  backoff?: { failures: number; retryAt: number; lastReason?: string };
  weights?: Record<string, number>;
  instances: Instance[];
}

export interface FeedEvent {
  time: number;
  kind: "node" | "leader" | "instance" | "slice" | "info";
  text: string;
}

export const caller = signal<Caller | null>(null);
export const loginError = signal<string | null>(null);
export const status = signal<ClusterStatus | null>(null);
export const slices = signal<Slice[]>([]);
export const feed = signal<FeedEvent[]>([]);
export const lastError = signal<string | null>(null);
/** How the page hears of changes now. */
export const liveMode = signal<"off" | "socket" | "polling">("off");
export const updatedAt = signal<number | null>(null);
/** The sampled figures, oldest first, one per update, for the sparklines (about the last minute). */
export const samples = signal<{ time: number; active: number; desired: number; connected: number }[]>([]);

export const canOperate = computed(() => caller.value?.role === "operator" || caller.value?.role === "admin");
export const isAdmin = computed(() => caller.value?.role === "admin");

/** Feed entries kept (newest first). */
export const MAX_FEED_EVENTS = 200;
/** Samples kept for a sparkline: a minute at one per second. */
export const MAX_SAMPLES = 60;
/** Between two polls while there is no socket. */
export const POLL_MS = 1_000;

export function pushEvent(kind: FeedEvent["kind"], text: string, time = Date.now()): void {
  feed.value = [{ time, kind, text }, ...feed.value].slice(0, MAX_FEED_EVENTS);
}

/** Checks a token with GET /whoami; a good one is kept for the tab and the live feed starts. */
export async function login(candidate: string): Promise<boolean> {
  const trimmed = candidate.trim();
  if (trimmed === "") {
    loginError.value = "Enter a token (aether token create prints one).";
    return false;
  }
  token.value = trimmed;
  try {
    const who = await get<Caller>("/whoami");
    storeToken(trimmed);
    batch(() => {
      caller.value = who;
      loginError.value = null;
    });
    startLive();
    return true;
  } catch (e) {
    token.value = null;
    loginError.value = e instanceof ApiError ? e.message : String(e);
    return false;
  }
}

export function logout(): void {
  stopLive();
  storeToken(null);
  batch(() => {
    caller.value = null;
    status.value = null;
    slices.value = [];
    feed.value = [];
    samples.value = [];
  });
}

/** Applies a new status and slice list: derives feed events from what changed, and samples the figures. */
export function applyUpdate(next: { status?: ClusterStatus; slices?: Slice[] }, time = Date.now()): void {
  batch(() => {
    if (next.status) {
      if (status.value) diffStatus(status.value, next.status, time);
      status.value = next.status;
    }
    if (next.slices) {
      if (updatedAt.value !== null) diffSlices(slices.value, next.slices, time);
      slices.value = next.slices;
    }
    updatedAt.value = time;
    const all = slices.value;
    const sample = {
      time,
      active: all.reduce((sum, s) => sum + s.active, 0),
      desired: all.reduce((sum, s) => sum + s.desired, 0),
      connected: status.value?.members.filter((m) => m.connected).length ?? 0,
    };
    samples.value = [...samples.value, sample].slice(-MAX_SAMPLES);
  });
}

function diffStatus(before: ClusterStatus, after: ClusterStatus, time: number): void {
  for (const member of after.members) {
    const was = before.members.find((m) => m.id === member.id);
    if (was && was.connected !== member.connected) {
      pushEvent("node", `node ${member.id} ${member.connected ? "is back" : "is down"}`, time);
    }
  }
  const leaderBefore = before.leader?.nodeId ?? null;
  const leaderAfter = after.leader?.nodeId ?? null;
  if (leaderBefore !== leaderAfter) {
    pushEvent("leader", leaderAfter ? `leader is now ${leaderAfter}` : "no leader", time);
  }
  if (before.quorum !== after.quorum) {
    pushEvent("node", after.quorum ? "quorum regained" : "quorum lost", time);
  }
}

function diffSlices(before: Slice[], after: Slice[], time: number): void {
  const key = (i: Instance) => `${i.node}/${i.version}/${i.n}`;
  for (const slice of after) {
    const old = before.find((s) => s.slice === slice.slice);
    if (!old) {
      pushEvent("slice", `${slice.slice} deployed (${slice.desired} wanted)`, time);
      continue;
    }
    if (old.desired !== slice.desired) {
      pushEvent("slice", `${slice.slice} scaled ${old.desired} → ${slice.desired}`, time);
    }
    const oldStates = new Map(old.instances.map((i) => [key(i), i.state]));
    for (const instance of slice.instances) {
      const was = oldStates.get(key(instance));
      if (was !== instance.state && (instance.state === "ACTIVE" || instance.state === "FAILED")) {
        const reason = instance.reason ? ` (${instance.reason})` : "";
        pushEvent(
          "instance",
          `${slice.slice}#${instance.n} on ${instance.node}: ${instance.state}${reason}`,
          time,
        );
      }
    }
  }
  for (const old of before) {
    if (!after.some((s) => s.slice === old.slice)) pushEvent("slice", `${old.slice} undeployed`, time);
  }
}

let pollTimer: ReturnType<typeof setTimeout> | undefined;
let socket: WebSocket | undefined;
let running = false;

/** Starts hearing of changes: the socket when the node has one, else polling. */
export function startLive(): void {
  if (running) return;
  running = true;
  void refresh();
  connectSocket();
}

export function stopLive(): void {
  running = false;
  clearTimeout(pollTimer);
  pollTimer = undefined;
  socket?.close();
  socket = undefined;
  liveMode.value = "off";
}

/** One round of the API calls the overview needs; failures show as the page's error line. */
export async function refresh(): Promise<void> {
  try {
    const [s, list] = await Promise.all([
      get<ClusterStatus>("/status"),
      get<{ slices: Slice[] }>("/slices"),
    ]);
    applyUpdate({ status: s, slices: list.slices });
    lastError.value = null;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      logout();
      loginError.value = `Signed out: ${e.message}`;
      return;
    }
    lastError.value = e instanceof Error ? e.message : String(e);
  }
}

function schedulePoll(): void {
  clearTimeout(pollTimer);
  if (!running || liveMode.value === "socket") return;
  pollTimer = setTimeout(async () => {
    await refresh();
    schedulePoll();
  }, POLL_MS);
}

/** Falls back to polling; the socket is tried again later in case the node gains one. */
function usePolling(): void {
  if (!running) return;
  liveMode.value = "polling";
  schedulePoll();
}

/**
 * The status WebSocket (`/api/v1/ws`). The browser cannot send an Authorization header on a WebSocket, so the
 * token travels as the `bearer.<token>` subprotocol (never in the URL, which logs keep). Until the node offers
 * the socket, the page polls.
 */
function connectSocket(): void {
  if (!running || token.value === null || typeof WebSocket === "undefined") return usePolling();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`;
  let opened = false;
  let ws: WebSocket;
  try {
    ws = new WebSocket(url, ["aether.v1", `bearer.${token.value}`]);
  } catch {
    return usePolling();
  }
  socket = ws;
  ws.onopen = () => {
    opened = true;
    clearTimeout(pollTimer);
    liveMode.value = "socket";
  };
  ws.onmessage = (message) => onSocketMessage(message.data);
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = undefined;
    usePolling();
    // A socket that opened and closed is retried soon; one that never opened, rarely (the node has none yet).
    if (running) setTimeout(connectSocket, opened ? 2_000 : 30_000);
  };
}

function onSocketMessage(data: unknown): void {
  if (typeof data !== "string") return;
  let message: { type?: string; status?: ClusterStatus; slices?: Slice[]; event?: FeedEvent };
  try {
    message = JSON.parse(data);
  } catch {
    return;
  }
  if (message.status || message.slices) applyUpdate({ status: message.status, slices: message.slices });
  if (message.event) {
    pushEvent(message.event.kind ?? "info", message.event.text ?? JSON.stringify(message.event));
  }
}
