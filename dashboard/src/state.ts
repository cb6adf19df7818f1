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

/** Per-node figures from the cluster's metrics snapshot, when the node has metrics (GET /metrics, socket). */
export interface MetricsSnapshot {
  atMs: number;
  leader?: string;
  nodes: {
    node: string;
    stale: boolean;
    process?: { cpuShare?: number; rssBytes?: number; heapUsedBytes?: number; eventLoopLagMs?: number };
    mesh?: { peer: string; connected: boolean; rttMs?: number }[];
  }[];
  slices?: {
    artifact: string;
    version: string;
    methods: {
      method: string;
      calls: number;
      errors?: Record<string, number>;
      latency?: { sumMs: number; count: number };
    }[];
  }[];
}

export const metrics = signal<MetricsSnapshot | null>(null);

/** Cluster traffic per second, from two metrics snapshots (counters are cumulative per node). */
export interface TrafficSample {
  time: number;
  callsPerSecond: number;
  /** Share of calls that failed (0..1); undefined without calls. */
  errorRate?: number;
  /** Mean call latency over the second, ms; undefined without calls. */
  meanMs?: number;
}

export const traffic = signal<TrafficSample[]>([]);

interface TrafficTotals {
  atMs: number;
  calls: number;
  errors: number;
  latencySumMs: number;
  latencyCount: number;
}

let lastTotals: TrafficTotals | undefined;

/** The busiest methods over the last snapshot interval (the overview's "top methods"). */
export interface TopMethod {
  name: string;
  callsPerSecond: number;
  errorsPerSecond: number;
  meanMs?: number;
}

export const topMethods = signal<TopMethod[]>([]);
/** Methods the overview lists. */
export const TOP_METHODS = 5;

interface MethodTotals {
  calls: number;
  errors: number;
  sumMs: number;
  count: number;
}

let lastMethods = new Map<string, MethodTotals>();

function methodTotals(snapshot: MetricsSnapshot): Map<string, MethodTotals> {
  const out = new Map<string, MethodTotals>();
  for (const slice of snapshot.slices ?? []) {
    for (const m of slice.methods) {
      out.set(`${slice.artifact}:${slice.version}/${m.method}`, {
        calls: m.calls,
        errors: Object.values(m.errors ?? {}).reduce((a, b) => a + b, 0),
        sumMs: m.latency?.sumMs ?? 0,
        count: m.latency?.count ?? 0,
      });
    }
  }
  return out;
}

function sampleTopMethods(now: Map<string, MethodTotals>, seconds: number): void {
  const before = lastMethods;
  lastMethods = now;
  if (seconds <= 0) return;
  const rows: TopMethod[] = [];
  for (const [name, t] of now) {
    const was = before.get(name);
    if (!was || t.calls < was.calls) continue;
    const count = t.count - was.count;
    rows.push({
      name,
      callsPerSecond: (t.calls - was.calls) / seconds,
      errorsPerSecond: Math.max(0, t.errors - was.errors) / seconds,
      ...(count > 0 ? { meanMs: (t.sumMs - was.sumMs) / count } : {}),
    });
  }
  topMethods.value = rows.filter((r) => r.callsPerSecond > 0).sort((a, b) =>
    b.callsPerSecond - a.callsPerSecond
  )
    .slice(0, TOP_METHODS);
}

function totalsOf(snapshot: MetricsSnapshot): TrafficTotals {
  const totals = { atMs: snapshot.atMs, calls: 0, errors: 0, latencySumMs: 0, latencyCount: 0 };
  for (const slice of snapshot.slices ?? []) {
    for (const m of slice.methods) {
      totals.calls += m.calls;
      totals.errors += Object.values(m.errors ?? {}).reduce((a, b) => a + b, 0);
      totals.latencySumMs += m.latency?.sumMs ?? 0;
      totals.latencyCount += m.latency?.count ?? 0;
    }
  }
  return totals;
}

/** Keeps a metrics snapshot and samples the traffic since the previous one (a restarted node's reset is skipped). */
export function applyMetrics(snapshot: MetricsSnapshot): void {
  metrics.value = snapshot;
  const now = totalsOf(snapshot);
  const before = lastTotals;
  lastTotals = now;
  sampleTopMethods(methodTotals(snapshot), before ? (now.atMs - before.atMs) / 1000 : 0);
  if (!before || now.atMs <= before.atMs) return;
  const calls = now.calls - before.calls;
  const errors = now.errors - before.errors;
  const count = now.latencyCount - before.latencyCount;
  if (calls < 0 || errors < 0 || count < 0) return;
  const sample: TrafficSample = {
    time: now.atMs,
    callsPerSecond: calls / ((now.atMs - before.atMs) / 1000),
    ...(calls > 0 ? { errorRate: errors / calls } : {}),
    ...(count > 0 ? { meanMs: (now.latencySumMs - before.latencySumMs) / count } : {}),
  };
  traffic.value = [...traffic.value, sample].slice(-MAX_SAMPLES);
}

/** Alerts pending and firing now, when the node runs alerts (read at sign-in and on alert events). */
export interface Alert {
  id: string;
  rule: string;
  node?: string;
  state: "pending" | "firing";
  expr: string;
  value?: number;
  threshold: number;
  severity: string;
  summary?: string;
  activeSince: number;
  firedAt?: number;
}

export const alerts = signal<Alert[]>([]);

export async function refreshAlerts(): Promise<void> {
  if (!serves("GET", "/alerts")) return;
  try {
    alerts.value = (await get<{ alerts: Alert[] }>("/alerts")).alerts;
  } catch {
    // The node's alerts may not run yet (503): the banner shows none rather than an error.
  }
}

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

/**
 * The API paths this node serves (`METHOD /api/v1/...` from its OpenAPI document), read once after sign-in:
 * pages for features a node does not have yet (metrics, rollouts, the socket) stay away from them instead of
 * calling into a 404.
 */
export const served = signal<ReadonlySet<string> | null>(null);

/** Whether the node serves an endpoint; true when its document could not be read (same build as the page). */
export const serves = (method: string, path: string) =>
  served.value === null || served.value.has(`${method} /api/v1${path}`);

async function readServed(): Promise<void> {
  try {
    const doc = await get<{ paths?: Record<string, Record<string, unknown>> }>("/openapi.json");
    const found = new Set<string>();
    for (const [path, operations] of Object.entries(doc.paths ?? {})) {
      for (const method of Object.keys(operations)) found.add(`${method.toUpperCase()} ${path}`);
    }
    served.value = found;
  } catch {
    served.value = null;
  }
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
    await readServed();
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
    traffic.value = [];
    topMethods.value = [];
    alerts.value = [];
    metrics.value = null;
  });
}

/** Applies a new status and slice list: derives feed events from what changed, and samples the figures. */
export function applyUpdate(next: { status?: ClusterStatus; slices?: Slice[] }, time = Date.now()): void {
  batch(() => {
    const derive = liveMode.value !== "socket";
    if (next.status) {
      if (status.value && derive) diffStatus(status.value, next.status, time);
      status.value = next.status;
    }
    if (next.slices) {
      if (updatedAt.value !== null && derive) diffSlices(slices.value, next.slices, time);
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
    await refreshAlerts();
    if (serves("GET", "/metrics")) applyMetrics(await get<MetricsSnapshot>("/metrics"));
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
  if (!running || token.value === null || typeof WebSocket === "undefined" || !serves("GET", "/ws")) {
    return usePolling();
  }
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

/** One event of the node's bus (runtime/metrics/events.ts), as the WebSocket sends it. */
export interface ClusterEvent {
  id: number;
  time: number;
  type: string;
  node: string;
  subject: string;
  details: Record<string, unknown>;
}

/** Event families after which the slices (instances, targets) or the status (members, leader) are read again. */
const SLICE_EVENTS = /^(instance|target|routing|blueprint)\./;
const STATUS_EVENTS = /^(node|leader)\./;

function onSocketMessage(data: unknown): void {
  if (typeof data !== "string") return;
  let message: { kind?: string; source?: string; snapshot?: Record<string, unknown>; event?: ClusterEvent };
  try {
    message = JSON.parse(data);
  } catch {
    return;
  }
  if (message.kind === "snapshot" && message.source === "status" && message.snapshot) {
    applyUpdate({ status: statusOfNodeView(message.snapshot) });
  } else if (message.kind === "snapshot" && message.source === "metrics" && message.snapshot) {
    // Membership and the leader come from this node's status, read again on node and leader events.
    applyMetrics(message.snapshot as unknown as MetricsSnapshot);
    if (status.value === null) void refreshStatus();
  } else if (message.kind === "event" && message.event) {
    const event = message.event;
    pushEvent(kindOf(event.type), describeEvent(event), event.time);
    if (SLICE_EVENTS.test(event.type)) scheduleSlicesRead();
    if (STATUS_EVENTS.test(event.type)) void refreshStatus();
    if (event.type.startsWith("alert.")) void refreshAlerts();
  }
}

/** The node's status as the socket sends it (the NodeStatusView of runtime/api), in GET /status's shape. */
function statusOfNodeView(view: Record<string, unknown>): ClusterStatus {
  const leader = view.leader as ClusterStatus["leader"];
  return {
    nodeId: String(view.nodeId),
    leader,
    isLeader: leader?.nodeId === view.nodeId,
    ready: Boolean(view.ready),
    quorum: Boolean(view.quorum),
    members: (view.members as Member[]) ?? [],
    revision: Number(view.revision ?? 0),
    phase: Number(view.phase ?? 0),
    uptimeSeconds: Number(view.uptimeMs ?? 0) / 1000,
  };
}

function kindOf(type: string): FeedEvent["kind"] {
  const family = type.split(".")[0];
  if (family === "node") return "node";
  if (family === "leader") return "leader";
  if (family === "instance") return "instance";
  if (family === "target" || family === "blueprint" || family === "routing") return "slice";
  return "info";
}

/** A sentence for an event; the type and subject for kinds the page does not know. */
export function describeEvent(event: ClusterEvent): string {
  const d = event.details ?? {};
  switch (event.type) {
    case "node.down":
      return `node ${event.subject} is down`;
    case "node.back":
    case "node.joined":
      return `node ${event.subject} is back`;
    case "node.suspected":
      return `node ${event.subject} is suspected`;
    case "leader.changed":
      return `leader is now ${d.leader ?? event.subject}`;
    case "instance.state":
      return `${event.subject}: ${d.from ?? "?"} → ${d.to ?? "?"}${d.reason ? ` (${d.reason})` : ""}`;
    case "instance.removed":
      return `${event.subject} removed`;
    case "target.changed":
      return `${event.subject} wants ${d.instances ?? "?"} × ${d.version ?? "?"}`;
    case "alert.pending":
    case "alert.firing":
    case "alert.resolved": {
      const alert = (d.alert ?? {}) as { expr?: string; value?: number };
      const value = typeof alert.value === "number" ? ` (now ${alert.value.toFixed(2)})` : "";
      return `alert ${event.subject} ${event.type.slice(6)}: ${alert.expr ?? ""}${value}`;
    }
    case "route.changed":
      return `route ${event.subject} on ${Array.isArray(d.nodes) ? d.nodes.join(", ") : "?"}`;
    default: {
      const details = JSON.stringify(d);
      return `${event.type} ${event.subject}${details === "{}" ? "" : ` ${details.slice(0, 160)}`}`;
    }
  }
}

/** Between two reads of the slices the socket's events cause: a burst of instance events costs one read. */
const SLICES_READ_GAP_MS = 250;
let slicesReadTimer: ReturnType<typeof setTimeout> | undefined;
let statusReadAt = 0;

function scheduleSlicesRead(): void {
  if (slicesReadTimer !== undefined) return;
  slicesReadTimer = setTimeout(async () => {
    slicesReadTimer = undefined;
    try {
      applyUpdate({ slices: (await get<{ slices: Slice[] }>("/slices")).slices });
    } catch (e) {
      lastError.value = e instanceof Error ? e.message : String(e);
    }
  }, SLICES_READ_GAP_MS);
}

async function refreshStatus(): Promise<void> {
  if (Date.now() - statusReadAt < POLL_MS) return;
  statusReadAt = Date.now();
  try {
    applyUpdate({ status: await get<ClusterStatus>("/status") });
  } catch (e) {
    lastError.value = e instanceof Error ? e.message : String(e);
  }
}
