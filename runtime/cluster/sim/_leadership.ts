/**
 * The simulator's leader-stability checks. It records every change of the agreed leader (the `leader` key, at
 * the time the first member applied it) and judges episodes: at most one leader change while one link is cut
 * (a partially connected leader that a quorum still hears stays), and a new leader within 2 s once the leader
 * crashed or was cut off from a quorum.
 */

import type { NodeId } from "../../core/mod.ts";
import type { KvEvent } from "../../kv/mod.ts";
import { LEADER_KEY, parseLeaderRecord } from "../leader.ts";

/** A new leader must be in place this soon after the leader crashed or was cut off from a quorum. */
export const NEW_LEADER_WITHIN_MS = 2_000;
/** A one-link cut may change the leader at most this often. */
export const MAX_LEADER_CHANGES_PER_LINK_CUT = 1;

/** A change of the `leader` key, when the first member applied it. */
interface LeaderEntry {
  revision: number;
  nodeId: NodeId | null;
  atMs: number;
}

/** A one-link cut, or a crash or isolation of the leader, whose effect on leadership is checked. */
export interface Episode {
  kind: "link" | "leader-crash" | "leader-isolated";
  startMs: number;
  /** For a cut link: its ends. */
  link?: [NodeId, NodeId];
  /** For leader episodes: the leader that went away, and from how many members it was cut off. */
  leader?: NodeId;
  cutFrom?: number;
  /** Another fault overlapped it or came too soon before it: nothing is concluded from it. */
  spoiled: boolean;
}

export class Leadership {
  readonly #fail: (message: string) => void;
  readonly #timeline: LeaderEntry[] = [];
  readonly #revisions = new Set<number>();
  linkEpisodesChecked = 0;
  maxChangesPerLinkEpisode = 0;
  leaderEpisodesChecked = 0;
  /** The longest time until a new leader after a leader fault (ms; -1 before the first). */
  slowestNewLeaderMs = -1;

  constructor(fail: (message: string) => void) {
    this.#fail = fail;
  }

  /** The agreed leader now (the latest record any member applied). */
  get current(): NodeId | null | undefined {
    return this.#timeline.at(-1)?.nodeId;
  }

  /** A member applied these events at `atMs`. */
  applied(events: readonly KvEvent[], atMs: number): void {
    for (const event of events) {
      if (event.key !== LEADER_KEY || this.#revisions.has(event.revision)) continue;
      this.#revisions.add(event.revision);
      const nodeId = event.type === "put" ? parseLeaderRecord(event.value)?.nodeId ?? null : null;
      const last = this.#timeline.at(-1);
      if (last && last.revision > event.revision) {
        this.#fail(`leader record of revision ${event.revision} applied after revision ${last.revision}`);
      }
      this.#timeline.push({ revision: event.revision, nodeId, atMs });
    }
  }

  /** Changes of the agreed leader (to another member) at or after `fromMs`. */
  changesSince(fromMs: number): LeaderEntry[] {
    const out: LeaderEntry[] = [];
    let previous: NodeId | null | undefined;
    for (const entry of this.#timeline) {
      if (entry.atMs >= fromMs && previous !== undefined && entry.nodeId !== previous) out.push(entry);
      previous = entry.nodeId;
    }
    return out;
  }

  /** A one-link cut ended a while ago: it changed the leader at most once. */
  checkLinkEpisode(episode: Episode): void {
    if (episode.spoiled) return;
    const changes = this.changesSince(episode.startMs);
    this.linkEpisodesChecked++;
    this.maxChangesPerLinkEpisode = Math.max(this.maxChangesPerLinkEpisode, changes.length);
    if (changes.length > MAX_LEADER_CHANGES_PER_LINK_CUT) {
      this.#fail(
        `leader stability: ${changes.length} leader changes while only the link ${
          episode.link!.join("-")
        } was ` +
          `cut (from ${episode.startMs} ms): ${changes.map((c) => `${c.nodeId}@${c.atMs}`).join(", ")}`,
      );
    }
  }

  /** NEW_LEADER_WITHIN_MS after a leader fault: another member leads. `describe` tells the cluster's state. */
  checkLeaderEpisode(episode: Episode, describe: () => string): void {
    if (episode.spoiled) return;
    const next = this.changesSince(episode.startMs).find((c) => c.nodeId !== episode.leader);
    this.leaderEpisodesChecked++;
    if (!next || next.atMs - episode.startMs > NEW_LEADER_WITHIN_MS) {
      const what = episode.kind === "leader-crash"
        ? "crashed"
        : `was cut off from ${episode.cutFrom} members`;
      return this.#fail(
        `leader election: no new leader within ${NEW_LEADER_WITHIN_MS} ms after leader ${episode.leader} ${what} ` +
          `at ${episode.startMs} ms\n${describe()}`,
      );
    }
    this.slowestNewLeaderMs = Math.max(this.slowestNewLeaderMs, next.atMs - episode.startMs);
  }
}
