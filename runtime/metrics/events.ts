/**
 * The node's cluster event bus: one per node, fed by what the node sees (membership, leadership, KV changes of
 * instances, blueprints, targets, routing and artifacts, alerts, and later the controller and rollouts), read by
 * the SSE stream (GET /api/v1/events), the WebSocket feed (GET /api/v1/ws) and the CLI (`aether events`).
 *
 * Every event gets the next id of this node's bus. Ids only grow, across restarts too: a bus starts at its
 * boot time in epoch milliseconds (the node passes it), so an id from before a restart is always older than the
 * oldest id of the new bus and a resume from it is answered "gone", never with the wrong events. Recent events
 * stay in a ring of `capacity` events (a fixed memory bound; the oldest fall out first); `since(id)` serves a
 * resume from it, or says the id is gone and names the oldest id the ring still holds.
 *
 * Subscribers are synchronous listeners called in publish order. A listener must not block: a slow reader
 * (an SSE connection) keeps its own bounded queue and drops itself when that overflows (the client resumes).
 */

import { AetherError, type Clock, type Logger, systemClock } from "../core/mod.ts";
import type { JsonValue } from "../model/mod.ts";

/** What one event says beyond its type and subject (JSON, at most MAX_EVENT_DETAILS_BYTES encoded). */
export type EventDetails = Record<string, JsonValue>;

/** One cluster event as this node's bus recorded it. */
export interface ClusterEvent {
  /** This node's sequence number for it: increasing, across restarts of the node too. */
  id: number;
  /** When it happened, epoch milliseconds. */
  time: number;
  /** `family.name`, e.g. `node.down`, `instance.state`, `alert.firing` (EVENT_TYPES lists the built-in ones). */
  type: string;
  /** The node whose bus recorded it (every node records cluster events it observes, each with its own ids). */
  node: string;
  /** What it is about: a node id, a slice `group:artifact`, an instance key, a rule name... */
  subject: string;
  details: EventDetails;
  /**
   * Present on an event another node published `everywhere` (alert transitions, controller decisions): the
   * node that published it. Absent when this node observed it itself.
   */
  origin?: string;
}

/** What a publisher gives; the bus adds id, node and (unless given) time. */
export interface EventInput {
  type: string;
  subject: string;
  details?: EventDetails;
  /** Epoch milliseconds; defaults to now. */
  time?: number;
  /**
   * Also publish it on every other node's bus (over the mesh), for facts only this node knows: what the leader
   * decides (alert transitions, controller decisions, rollout steps). Facts every node sees by itself (KV
   * changes, its own connections) are published by each node's event sources and must not be relayed.
   */
  everywhere?: boolean;
}

/** What travels to the other nodes for an `everywhere` event. */
export interface RelayedEvent {
  type: string;
  subject: string;
  details: EventDetails;
  time: number;
}

/**
 * The built-in event types. Publishers in later layers (controller, rollouts) add their own `family.name`
 * types (`controller.decision`, `rollout.step`, ...); any well-formed type is accepted.
 */
export const EVENT_TYPES = {
  /** A member connected for the first time since this node started. */
  nodeJoined: "node.joined",
  /** A member's connection was lost (crashed, stopped, or cut off). */
  nodeDown: "node.down",
  /** A member is connected but missed its heartbeats (may be overloaded or partitioned). */
  nodeSuspected: "node.suspected",
  /** A member that was down or suspected is connected and healthy again. */
  nodeBack: "node.back",
  /** A member announced it is stopping (a graceful leave). */
  nodeLeft: "node.left",
  /** The consensus-agreed leader changed. */
  leaderChanged: "leader.changed",
  /** An instance's lifecycle state changed (details: from, to). */
  instanceState: "instance.state",
  /** An instance record was removed (unloaded). */
  instanceRemoved: "instance.removed",
  blueprintPublished: "blueprint.published",
  blueprintRemoved: "blueprint.removed",
  targetChanged: "target.changed",
  targetRemoved: "target.removed",
  routingChanged: "routing.changed",
  routingRemoved: "routing.removed",
  routeChanged: "route.changed",
  routeRemoved: "route.removed",
  artifactPushed: "artifact.pushed",
  artifactDeleted: "artifact.deleted",
  alertPending: "alert.pending",
  alertFiring: "alert.firing",
  alertResolved: "alert.resolved",
  /** A rule left pending without firing (its condition cleared before its `for` elapsed). */
  alertCleared: "alert.cleared",
  /** An alert rule (`thresholds/...`) was created or changed. */
  alertRuleChanged: "alert.rule-changed",
  alertRuleRemoved: "alert.rule-removed",
} as const;

/** Events the ring holds by default (each at most ~8 KiB, typically ~300 bytes). */
export const DEFAULT_EVENT_CAPACITY = 10_000;
/** The largest ring a node may be configured with. */
export const MAX_EVENT_CAPACITY = 1_000_000;
/** Listeners at most (SSE connections, WebSockets, internal consumers) on one bus. */
export const MAX_EVENT_SUBSCRIBERS = 1_024;
/** Encoded size of one event's details, at most. */
export const MAX_EVENT_DETAILS_BYTES = 8 * 1024;
export const MAX_EVENT_SUBJECT_CHARS = 512;
export const MAX_EVENT_TYPE_CHARS = 64;

const TYPE_PATTERN = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$/;
const FILTER_PATTERN = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$/;

/** Whether `type` is a well-formed event type (`family.name`, lower case). */
export function isEventType(type: unknown): type is string {
  return typeof type === "string" && type.length <= MAX_EVENT_TYPE_CHARS && TYPE_PATTERN.test(type);
}

/**
 * Which types a reader wants: each entry is a type (`node.down`) or a family prefix (`node` takes every
 * `node.*`). Empty or absent: every event.
 */
export type EventTypeFilter = readonly string[];

/**
 * Parses `?type=` values (repeated and/or comma-separated) into a filter; `where` names the input in the error
 * (a query parameter, a flag).
 */
export function parseEventTypeFilter(values: readonly string[], where: string): EventTypeFilter {
  const entries = values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
  for (const entry of entries) {
    if (entry.length > MAX_EVENT_TYPE_CHARS || !FILTER_PATTERN.test(entry)) {
      throw new AetherError(
        "bad_request",
        `${where}: "${entry}" is not an event type or family (lower-case words joined by dots, e.g. node.down or node)`,
        { field: where },
      );
    }
  }
  return entries;
}

/** Whether `event` passes `filter` (see EventTypeFilter). */
export function matchesTypes(type: string, filter: EventTypeFilter | undefined): boolean {
  if (!filter || filter.length === 0) return true;
  return filter.some((entry) => type === entry || type.startsWith(entry + "."));
}

/** A resume point that the ring no longer holds: the reader missed events and must start over. */
export interface EventsGone {
  gone: true;
  /** The oldest id the ring holds (undefined when it is empty). */
  oldestId: number | undefined;
}

export interface EventsSince {
  gone: false;
  events: ClusterEvent[];
}

export interface EventBusStats {
  /** Events held now, and the ring's size. */
  held: number;
  capacity: number;
  /** Events published since the bus started. */
  published: number;
  /** Events that fell out of the ring. */
  evicted: number;
  subscribers: number;
  maxSubscribers: number;
  /** Subscriptions refused because MAX subscribers were listening. */
  refusedSubscribers: number;
  oldestId: number | undefined;
  latestId: number | undefined;
}

export interface EventBusOptions {
  /** The node this bus belongs to (each event's `node`). */
  node: string;
  /** The first id (the node passes its boot time in epoch ms so ids grow across restarts). Default 1. */
  firstId?: number;
  capacity?: number;
  maxSubscribers?: number;
  /** Epoch-millisecond clock for events published without a time. */
  clock?: Clock;
  /** Where a failing listener is reported. */
  log?: Logger;
}

export type EventListener = (event: ClusterEvent) => void;

export interface EventSubscription {
  close(): void;
}

/** The node's event bus (see the file header). */
export class EventBus {
  readonly node: string;
  readonly capacity: number;
  readonly #maxSubscribers: number;
  readonly #clock: Clock;
  readonly #log?: Logger;
  /** Ring of recent events: `#ring[(#start + i) % capacity]` for i < #held, oldest first. */
  readonly #ring: (ClusterEvent | undefined)[];
  #start = 0;
  #held = 0;
  #nextId: number;
  #published = 0;
  #refusedSubscribers = 0;
  readonly #subscribers = new Set<{ listener: EventListener; filter?: EventTypeFilter }>();
  #relay?: (event: RelayedEvent) => void;

  constructor(options: EventBusOptions) {
    const capacity = options.capacity ?? DEFAULT_EVENT_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_EVENT_CAPACITY) {
      throw new AetherError(
        "bad_request",
        `event bus capacity must be 1..${MAX_EVENT_CAPACITY}, got ${capacity}`,
      );
    }
    const firstId = options.firstId ?? 1;
    if (!Number.isSafeInteger(firstId) || firstId < 1) {
      throw new AetherError("bad_request", `event bus first id must be a positive integer, got ${firstId}`);
    }
    this.node = options.node;
    this.capacity = capacity;
    this.#maxSubscribers = options.maxSubscribers ?? MAX_EVENT_SUBSCRIBERS;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log;
    this.#ring = new Array(capacity);
    this.#nextId = firstId;
  }

  /**
   * Records an event and hands it to every matching subscriber (synchronously, in publish order). Throws on a
   * malformed type, an over-long subject or over-large details: publishers are runtime code, so that is a bug.
   */
  publish(input: EventInput): ClusterEvent {
    const event = this.#validated(input, undefined);
    if (input.everywhere) this.#relayOut(event);
    return this.#deliver(event);
  }

  /**
   * Sets where `everywhere` events go to reach the other nodes (the node's event sources send them over the
   * mesh). Without one they stay on this bus.
   */
  setRelay(relay: ((event: RelayedEvent) => void) | undefined): void {
    this.#relay = relay;
  }

  /** Records an event that node `origin` published `everywhere` (validated like a local one). */
  publishRelayed(origin: string, relayed: RelayedEvent): ClusterEvent {
    return this.#deliver(this.#validated(relayed, origin));
  }

  #relayOut(event: ClusterEvent): void {
    try {
      this.#relay?.({ type: event.type, subject: event.subject, details: event.details, time: event.time });
    } catch (e) {
      this.#log?.error("event relay failed", { type: event.type, error: (e as Error).stack ?? String(e) });
    }
  }

  #deliver(event: ClusterEvent): ClusterEvent {
    this.#append(event);
    for (const subscriber of [...this.#subscribers]) {
      if (!matchesTypes(event.type, subscriber.filter)) continue;
      try {
        subscriber.listener(event);
      } catch (e) {
        this.#log?.error("event listener failed", {
          type: event.type,
          error: (e as Error).stack ?? String(e),
        });
      }
    }
    return event;
  }

  /**
   * Calls `listener` with every event published from now on that passes `filter`. Throws `overloaded` when
   * the bus already has its maximum of subscribers.
   */
  subscribe(listener: EventListener, filter?: EventTypeFilter): EventSubscription {
    if (this.#subscribers.size >= this.#maxSubscribers) {
      this.#refusedSubscribers++;
      throw new AetherError(
        "overloaded",
        `the event bus of ${this.node} has its maximum of ${this.#maxSubscribers} subscribers`,
      );
    }
    const entry = { listener, filter };
    this.#subscribers.add(entry);
    return { close: () => this.#subscribers.delete(entry) };
  }

  /**
   * The events after `lastId` that pass `filter`, oldest first (at most `limit`, the oldest of them). Gone
   * when events after `lastId` have fallen out of the ring, or `lastId` is from another stream: newer than the
   * latest id, or older than this bus's first id less one (read before the node restarted).
   */
  since(lastId: number, filter?: EventTypeFilter, limit = this.capacity): EventsSince | EventsGone {
    // The ring holds ids oldestHeld .. nextId-1 with no gaps; the bus issued ids firstIssued .. nextId-1.
    const oldestHeld = this.#nextId - this.#held;
    const firstIssued = this.#nextId - this.#published;
    const fromAnotherStream = lastId >= this.#nextId || lastId < firstIssued - 1;
    if (fromAnotherStream || lastId + 1 < oldestHeld) return { gone: true, oldestId: this.oldestId };
    const events: ClusterEvent[] = [];
    for (let i = lastId + 1 - oldestHeld; i < this.#held && events.length < limit; i++) {
      const event = this.#at(i);
      if (matchesTypes(event.type, filter)) events.push(event);
    }
    return { gone: false, events };
  }

  /** The newest `limit` events that pass `filter`, oldest first. */
  recent(limit: number, filter?: EventTypeFilter): ClusterEvent[] {
    const events: ClusterEvent[] = [];
    for (let i = this.#held - 1; i >= 0 && events.length < limit; i--) {
      const event = this.#at(i);
      if (matchesTypes(event.type, filter)) events.push(event);
    }
    return events.reverse();
  }

  get oldestId(): number | undefined {
    return this.#held === 0 ? undefined : this.#at(0).id;
  }

  get latestId(): number | undefined {
    return this.#held === 0 ? undefined : this.#at(this.#held - 1).id;
  }

  /** The id the next event will get. */
  get nextId(): number {
    return this.#nextId;
  }

  get stats(): EventBusStats {
    return {
      held: this.#held,
      capacity: this.capacity,
      published: this.#published,
      evicted: this.#published - this.#held,
      subscribers: this.#subscribers.size,
      maxSubscribers: this.#maxSubscribers,
      refusedSubscribers: this.#refusedSubscribers,
      oldestId: this.oldestId,
      latestId: this.latestId,
    };
  }

  #at(i: number): ClusterEvent {
    return this.#ring[(this.#start + i) % this.capacity]!;
  }

  #append(event: ClusterEvent): void {
    if (this.#held < this.capacity) {
      this.#ring[(this.#start + this.#held) % this.capacity] = event;
      this.#held++;
    } else {
      this.#ring[this.#start] = event;
      this.#start = (this.#start + 1) % this.capacity;
    }
    this.#published++;
  }

  #validated(input: EventInput, origin: string | undefined): ClusterEvent {
    if (!isEventType(input.type)) {
      throw new AetherError("bad_request", `event type "${input.type}" is not family.name in lower case`);
    }
    if (typeof input.subject !== "string" || input.subject.length > MAX_EVENT_SUBJECT_CHARS) {
      throw new AetherError(
        "bad_request",
        `event ${input.type}: subject must be text of at most ${MAX_EVENT_SUBJECT_CHARS} characters`,
      );
    }
    const details = input.details ?? {};
    if (typeof details !== "object" || details === null || Array.isArray(details)) {
      throw new AetherError("bad_request", `event ${input.type}: details must be a JSON object`);
    }
    const bytes = new TextEncoder().encode(JSON.stringify(details)).length;
    if (bytes > MAX_EVENT_DETAILS_BYTES) {
      throw new AetherError(
        "too_large",
        `event ${input.type} about ${input.subject}: details take ${bytes} bytes, more than ${MAX_EVENT_DETAILS_BYTES}`,
      );
    }
    if (input.time !== undefined && !(Number.isFinite(input.time) && input.time >= 0)) {
      throw new AetherError(
        "bad_request",
        `event ${input.type}: time must be epoch milliseconds, got ${input.time}`,
      );
    }
    const time = input.time ?? Math.round(this.#clock.now());
    const event: ClusterEvent = {
      id: this.#nextId++,
      time,
      type: input.type,
      node: this.node,
      subject: input.subject,
      details,
    };
    if (origin !== undefined) event.origin = origin;
    return event;
  }
}
