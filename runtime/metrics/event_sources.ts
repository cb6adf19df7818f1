/**
 * Where a node's cluster events come from. Each node derives them from what it already sees, so every node's
 * stream shows the cluster's events without any extra consensus traffic:
 *
 * - membership, from the mesh: a member connecting for the first time (`node.joined`), its connection lost
 *   (`node.down`) or closed by it on purpose (`node.left`), connected but silent for `suspectAfterMs`
 *   (`node.suspected`), and healthy again after either (`node.back`);
 * - the replicated state, from the applied KV changes (the same on every node, in revision order): the
 *   leader record, instance lifecycle states, blueprints, targets, routing weights, routes, artifacts and
 *   alert rules; compared with the record before, so only real transitions become events;
 * - events another node published `everywhere` (the leader's alert transitions, controller decisions), over
 *   the mesh channel EVENTS_CHANNEL.
 *
 * A snapshot install replaces the state wholesale: the caches are rebuilt from it without events (what
 * changed in between is not known transition by transition).
 */

import type {
  ArtifactBase,
  ArtifactCoordinates,
  Clock,
  Logger,
  NodeId,
  TimerHandle,
  Timers,
} from "../core/mod.ts";
import { formatBase, formatCoordinates, systemClock } from "../core/mod.ts";
import type { KvEntry, KvEvent } from "../kv/mod.ts";
import {
  type ArtifactRecord,
  type BlueprintRecord,
  type DecodedEntry,
  decodeEntry,
  type InstanceRecord,
  KEY_PREFIXES,
  LEADER_KEY,
  type LeaderRecord,
  parseKey,
  type RouteRecord,
  type RoutingRecord,
  type TargetRecord,
} from "../model/mod.ts";
import {
  EVENT_TYPES,
  type EventBus,
  type EventDetails,
  type EventInput,
  type RelayedEvent,
} from "./events.ts";

/** The mesh channel of events published `everywhere`. */
export const EVENTS_CHANNEL = "ev";

/** A connected member silent this long (no frame, heartbeats included) is suspected. */
export const DEFAULT_SUSPECT_AFTER_MS = 600;
/** How often the connections are checked for silence. */
export const SUSPECT_CHECK_MS = 200;

/** The KV families events are derived from (prefixes watched). */
const WATCHED_PREFIXES = [
  KEY_PREFIXES.instances,
  KEY_PREFIXES.blueprints,
  KEY_PREFIXES.targets,
  KEY_PREFIXES.routing,
  KEY_PREFIXES.routes,
  KEY_PREFIXES.artifacts,
  KEY_PREFIXES.thresholds,
] as const;

/** What the membership source needs of the mesh. */
export interface MeshView {
  onPeerUp(handler: (id: NodeId) => void): () => void;
  onPeerDown(handler: (id: NodeId, reason: string) => void): () => void;
  onMessage(channel: string, handler: (from: NodeId, message: unknown) => void): () => void;
  broadcast(channel: string, message: unknown): NodeId[];
  isConnected(id: NodeId): boolean;
  /** Frames received from the peer so far (heartbeats included): the sign of life. */
  peerStats(id: NodeId): { framesIn: number };
}

/** What the KV sources need of the node's replicated state. */
export interface KvView {
  /** Entries under `prefix` now (to seed the caches). */
  range(prefix: string): KvEntry[];
  get(key: string): KvEntry | undefined;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
}

export interface EventSourcesOptions {
  self: NodeId;
  members: readonly NodeId[];
  bus: EventBus;
  mesh: MeshView;
  kv: KvView;
  log: Logger;
  timers?: Timers;
  /** Epoch clock for event times. */
  clock?: Clock;
  suspectAfterMs?: number;
}

export interface EventSources {
  stop(): void;
}

/** Starts every event source of this node (see the file header). */
export function startEventSources(o: EventSourcesOptions): EventSources {
  const membership = new MembershipSource(o);
  const state = new KvSource(o.bus, o.kv, o.log);
  const relay = startRelay(o);
  return {
    stop() {
      membership.stop();
      state.stop();
      relay.stop();
    },
  };
}

// ------------------------------------------------------------------------------------------------ relay

function startRelay(o: EventSourcesOptions): { stop(): void } {
  o.bus.setRelay((event) => o.mesh.broadcast(EVENTS_CHANNEL, event));
  const off = o.mesh.onMessage(EVENTS_CHANNEL, (from, message) => {
    try {
      o.bus.publishRelayed(from, relayedEvent(message));
    } catch (e) {
      o.log.warn("dropped a malformed relayed event", { from, error: (e as Error).message });
    }
  });
  return {
    stop() {
      off();
      o.bus.setRelay(undefined);
    },
  };
}

/** A relayed event as it came over the mesh, shape-checked (the bus checks the rest). */
function relayedEvent(message: unknown): RelayedEvent {
  const m = message as Partial<RelayedEvent> | null;
  if (
    typeof m !== "object" || m === null || typeof m.type !== "string" || typeof m.subject !== "string" ||
    typeof m.time !== "number" || typeof m.details !== "object" || m.details === null
  ) {
    throw new Error("not {type, subject, details, time}");
  }
  return { type: m.type, subject: m.subject, details: m.details, time: m.time };
}

// ------------------------------------------------------------------------------------------- membership

type PeerHealth = "never" | "up" | "suspected" | "down";

/** Membership events from the mesh's connections and their heartbeats. */
class MembershipSource {
  readonly #o: EventSourcesOptions;
  readonly #timers: Timers;
  readonly #suspectAfterMs: number;
  readonly #health = new Map<NodeId, PeerHealth>();
  /** Per connected peer: frames received at the last check, and when that count last moved. */
  readonly #life = new Map<NodeId, { framesIn: number; changedAt: number }>();
  readonly #offs: (() => void)[] = [];
  #timer?: TimerHandle;
  #stopped = false;

  constructor(o: EventSourcesOptions) {
    this.#o = o;
    this.#timers = o.timers ?? systemClock;
    this.#suspectAfterMs = o.suspectAfterMs ?? DEFAULT_SUSPECT_AFTER_MS;
    for (const id of o.members) if (id !== o.self) this.#health.set(id, "never");
    this.#offs.push(o.mesh.onPeerUp((id) => this.#up(id)));
    this.#offs.push(o.mesh.onPeerDown((id, reason) => this.#down(id, reason)));
    // Peers that connected before the sources started.
    for (const id of this.#health.keys()) if (o.mesh.isConnected(id)) this.#up(id);
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    for (const off of this.#offs) off();
  }

  #up(id: NodeId): void {
    const before = this.#health.get(id);
    if (before === undefined || before === "up") return;
    this.#health.set(id, "up");
    this.#life.set(id, { framesIn: this.#framesIn(id), changedAt: this.#timers.now() });
    if (before === "never") this.#publish(EVENT_TYPES.nodeJoined, id, {});
    else this.#publish(EVENT_TYPES.nodeBack, id, { after: before });
  }

  #down(id: NodeId, reason: string): void {
    const before = this.#health.get(id);
    if (before === undefined || before === "down" || before === "never") return;
    this.#health.set(id, "down");
    this.#life.delete(id);
    // A closing handshake from the peer (1000 normal, 1001 going away, 1005 no code given) is a deliberate
    // stop; anything else (an abnormal close, silence, an error) is a failure.
    const graceful = /connection closed \(code (1000|1001|1005)\)/.test(reason);
    this.#publish(graceful ? EVENT_TYPES.nodeLeft : EVENT_TYPES.nodeDown, id, { reason, was: before });
  }

  #check(): void {
    const now = this.#timers.now();
    for (const [id, life] of this.#life) {
      const framesIn = this.#framesIn(id);
      if (framesIn !== life.framesIn) {
        life.framesIn = framesIn;
        life.changedAt = now;
        if (this.#health.get(id) === "suspected") {
          this.#health.set(id, "up");
          this.#publish(EVENT_TYPES.nodeBack, id, { after: "suspected" });
        }
      } else if (this.#health.get(id) === "up" && now - life.changedAt >= this.#suspectAfterMs) {
        this.#health.set(id, "suspected");
        this.#publish(EVENT_TYPES.nodeSuspected, id, { silentMs: Math.round(now - life.changedAt) });
      }
    }
  }

  #framesIn(id: NodeId): number {
    try {
      return this.#o.mesh.peerStats(id).framesIn;
    } catch {
      return 0;
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#timers.schedule(SUSPECT_CHECK_MS, () => {
      this.#check();
      this.#schedule();
    });
  }

  #publish(type: string, subject: NodeId, details: EventDetails): void {
    this.#o.bus.publish({ type, subject, details });
  }
}

// --------------------------------------------------------------------------------------- replicated state

/** What a record was before a change, as far as events need it. */
type Remembered =
  | { family: "instance"; state: string }
  | { family: "target"; version: string; instances: number; min?: number; max?: number }
  | { family: "routing"; weights: string }
  | { family: "route"; slice: string; method: string; nodes: string }
  | { family: "artifact" }
  | { family: "blueprint" }
  | { family: "threshold"; text: string };

/** Events from the applied KV changes of the watched families (see the file header). */
class KvSource {
  readonly #bus: EventBus;
  readonly #kv: KvView;
  readonly #log: Logger;
  /** The watched records as events last saw them, by key (as many as the store holds of those families). */
  readonly #known = new Map<string, Remembered>();
  #leader: LeaderRecord | undefined;
  readonly #offs: (() => void)[];

  constructor(bus: EventBus, kv: KvView, log: Logger) {
    this.#bus = bus;
    this.#kv = kv;
    this.#log = log;
    this.#seed();
    this.#offs = [kv.onEvents((events) => this.#apply(events)), kv.onReset(() => this.#seed())];
  }

  stop(): void {
    for (const off of this.#offs) off();
  }

  #seed(): void {
    this.#known.clear();
    for (const prefix of WATCHED_PREFIXES) {
      for (const entry of this.#kv.range(prefix)) {
        const decoded = this.#decode(entry.key, entry.value);
        const remembered = decoded && remember(decoded);
        if (remembered) this.#known.set(entry.key, remembered);
      }
    }
    const leader = this.#kv.get(LEADER_KEY);
    const decoded = leader && this.#decode(leader.key, leader.value);
    this.#leader = decoded?.family === "leader" ? decoded.value : undefined;
  }

  #apply(events: readonly KvEvent[]): void {
    for (const event of events) {
      if (event.key === LEADER_KEY) this.#leaderChange(event);
      else if (WATCHED_PREFIXES.some((p) => event.key.startsWith(p))) this.#change(event);
    }
  }

  #leaderChange(event: KvEvent): void {
    if (event.type !== "put" || !event.value) return;
    const decoded = this.#decode(event.key, event.value);
    if (decoded?.family !== "leader") return;
    const before = this.#leader;
    this.#leader = decoded.value;
    if (before?.nodeId === decoded.value.nodeId) return;
    this.#publish({
      type: EVENT_TYPES.leaderChanged,
      subject: decoded.value.nodeId,
      details: { leader: decoded.value.nodeId, previous: before?.nodeId ?? null, view: decoded.value.view },
    });
  }

  #change(event: KvEvent): void {
    const before = this.#known.get(event.key);
    if (event.type === "delete") {
      this.#known.delete(event.key);
      const removed = removalEvent(event.key, before);
      if (removed) this.#publish(removed);
      return;
    }
    const decoded = event.value && this.#decode(event.key, event.value);
    if (!decoded) return;
    const now = remember(decoded);
    if (!now) return;
    this.#known.set(event.key, now);
    const changed = changeEvent(decoded, before, now);
    if (changed) this.#publish(changed);
  }

  #decode(key: string, value: Uint8Array): DecodedEntry | undefined {
    try {
      return decodeEntry(key, value);
    } catch (e) {
      this.#log.warn("event sources: skipped an undecodable record", { key, error: (e as Error).message });
      return undefined;
    }
  }

  #publish(input: EventInput): void {
    try {
      this.#bus.publish(input);
    } catch (e) {
      this.#log.error("event sources: could not publish", { type: input.type, error: (e as Error).message });
    }
  }
}

/** The part of a record that decides whether a change is an event. */
function remember(decoded: DecodedEntry): Remembered | undefined {
  switch (decoded.family) {
    case "instance":
      return { family: "instance", state: decoded.value.state };
    case "target": {
      const { version, instances, min, max } = decoded.value;
      return { family: "target", version, instances, min, max };
    }
    case "routing":
      return { family: "routing", weights: routingText(decoded.value) };
    case "route":
      return {
        family: "route",
        slice: decoded.value.slice,
        method: decoded.value.method,
        nodes: [...decoded.value.nodes].sort().join(","),
      };
    case "artifact":
      return { family: "artifact" };
    case "blueprint":
      return { family: "blueprint" };
    case "threshold":
      return { family: "threshold", text: JSON.stringify({ ...decoded.value, updatedAt: 0 }) };
    default:
      return undefined;
  }
}

/** The event for a put, or undefined when nothing that matters changed. */
function changeEvent(
  decoded: DecodedEntry,
  before: Remembered | undefined,
  now: Remembered,
): EventInput | undefined {
  switch (decoded.family) {
    case "instance":
      return instanceEvent(decoded.key, decoded.value, before, now);
    case "target":
      return targetEvent(decoded.key.slice, decoded.value, before, now);
    case "routing":
      if (before?.family === "routing" && now.family === "routing" && before.weights === now.weights) return;
      return {
        type: EVENT_TYPES.routingChanged,
        subject: sliceText(decoded.key.slice),
        details: routingDetails(decoded.value),
      };
    case "route":
      return routeEvent(decoded.key.method, decoded.key.path, decoded.value, before, now);
    case "artifact":
      return before ? undefined : artifactEvent(decoded.key.artifact, decoded.value);
    case "blueprint":
      return blueprintEvent(decoded.value, before !== undefined);
    case "threshold":
      if (before?.family === "threshold" && now.family === "threshold" && before.text === now.text) return;
      return {
        type: EVENT_TYPES.alertRuleChanged,
        subject: decoded.key.metric,
        details: { created: before === undefined },
      };
    default:
      return undefined;
  }
}

function instanceEvent(
  key: { node: NodeId; artifact: ArtifactCoordinates; n: number },
  record: InstanceRecord,
  before: Remembered | undefined,
  now: Remembered,
): EventInput | undefined {
  const from = before?.family === "instance" ? before.state : null;
  if (now.family !== "instance" || from === now.state) return undefined;
  const details: EventDetails = { ...instanceDetails(key), from, to: record.state };
  if (record.reason !== undefined) details.reason = record.reason;
  if (record.lost) details.lost = true;
  return { type: EVENT_TYPES.instanceState, subject: instanceSubject(key), details };
}

function targetEvent(
  slice: ArtifactBase,
  record: TargetRecord,
  before: Remembered | undefined,
  now: Remembered,
): EventInput | undefined {
  if (now.family !== "target") return undefined;
  const was = before?.family === "target" ? before : undefined;
  if (
    was && was.version === now.version && was.instances === now.instances && was.min === now.min &&
    was.max === now.max
  ) return undefined;
  const details: EventDetails = {
    version: record.version,
    instances: record.instances,
    owners: record.owners,
  };
  if (record.min !== undefined) details.min = record.min;
  if (record.max !== undefined) details.max = record.max;
  if (was) details.previous = { version: was.version, instances: was.instances };
  return { type: EVENT_TYPES.targetChanged, subject: sliceText(slice), details };
}

function routeEvent(
  method: string,
  path: string,
  record: RouteRecord,
  before: Remembered | undefined,
  now: Remembered,
): EventInput | undefined {
  if (
    before?.family === "route" && now.family === "route" && before.slice === now.slice &&
    before.method === now.method && before.nodes === now.nodes
  ) return undefined;
  return {
    type: EVENT_TYPES.routeChanged,
    subject: `${method} ${path}`,
    details: { slice: record.slice, method: record.method, nodes: record.nodes },
  };
}

function artifactEvent(
  artifact: ArtifactCoordinates,
  record: ArtifactRecord,
): EventInput {
  return {
    type: EVENT_TYPES.artifactPushed,
    subject: formatCoordinates(artifact),
    details: { sha256: record.sha256, sizeBytes: record.sizeBytes, holders: record.holders },
  };
}

function blueprintEvent(record: BlueprintRecord, replaced: boolean): EventInput {
  return {
    type: EVENT_TYPES.blueprintPublished,
    subject: record.id,
    details: { slices: record.slices.map((s) => String(s.artifact)), replaced },
  };
}

/** The event for a deleted record of a watched family. */
function removalEvent(key: string, before: Remembered | undefined): EventInput | undefined {
  let parsed;
  try {
    parsed = parseKey(key);
  } catch {
    return undefined;
  }
  switch (parsed.family) {
    case "instance": {
      const from = before?.family === "instance" ? before.state : null;
      return {
        type: EVENT_TYPES.instanceRemoved,
        subject: instanceSubject(parsed),
        details: { ...instanceDetails(parsed), from },
      };
    }
    case "target":
      return { type: EVENT_TYPES.targetRemoved, subject: sliceText(parsed.slice), details: {} };
    case "routing":
      return { type: EVENT_TYPES.routingRemoved, subject: sliceText(parsed.slice), details: {} };
    case "route":
      return { type: EVENT_TYPES.routeRemoved, subject: `${parsed.method} ${parsed.path}`, details: {} };
    case "artifact": {
      return { type: EVENT_TYPES.artifactDeleted, subject: formatCoordinates(parsed.artifact), details: {} };
    }
    case "blueprint":
      return { type: EVENT_TYPES.blueprintRemoved, subject: parsed.id, details: {} };
    case "threshold":
      return { type: EVENT_TYPES.alertRuleRemoved, subject: parsed.metric, details: {} };
    default:
      return undefined;
  }
}

function sliceText(slice: ArtifactBase): string {
  return formatBase(slice);
}

/** `{node}/{group}:{artifact}:{version}/{n}`: the instance's key without its family prefix. */
function instanceSubject(key: { node: NodeId; artifact: ArtifactCoordinates; n: number }): string {
  return `${key.node}/${formatCoordinates(key.artifact)}/${key.n}`;
}

function instanceDetails(key: { node: NodeId; artifact: ArtifactCoordinates; n: number }): EventDetails {
  return { node: key.node, slice: formatBase(key.artifact), version: key.artifact.version, n: key.n };
}

function routingText(record: RoutingRecord): string {
  return JSON.stringify(routingDetails(record));
}

function routingDetails(record: RoutingRecord): EventDetails {
  const details: EventDetails = {
    oldVersion: record.oldVersion,
    newVersion: record.newVersion,
    oldWeight: record.oldWeight,
    newWeight: record.newWeight,
  };
  if (record.oldInstances !== undefined) details.oldInstances = record.oldInstances;
  if (record.newInstances !== undefined) details.newInstances = record.newInstances;
  return details;
}
