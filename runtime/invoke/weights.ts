/**
 * Version-weighted routing: which version of a slice serves one request while `routing/{group}:{artifact}`
 * holds weights between an old and a new version (a rolling, canary or blue-green deployment).
 *
 * Semantics (the original's `new:old` ratio, kept where it makes sense):
 * - weights are integers ≥ 0 and not both 0; `new:0` sends everything to the new version, `0:old` everything to
 *   the old one;
 * - the choice is made per request, not per connection or per caller;
 * - the split is exact, not random: a smooth weighted round-robin (the one nginx uses) per slice and node, so
 *   1:3 sends exactly one request in four to the new version, interleaved (old, old, new, old, ...), and every
 *   node keeps that ratio on its own traffic whatever the other nodes do;
 * - a version with no live instance right now is skipped and the other one serves (availability first: the
 *   runtime promises that calls succeed while the cluster lives); a version outside the caller's version range
 *   is never chosen.
 *
 * Deliberate difference from the original: it scaled the ratio to instance counts and fell back to "all old"
 * when the counts could not express it (1:3 needed at least 1 new and 3 old instances). Here the ratio is
 * applied to requests, then round-robin picks an instance within the version, so 1:3 works with one instance
 * of each.
 *
 * Pure: no clock, no randomness, no IO.
 */

export interface VersionWeightsRecord {
  oldVersion: string;
  newVersion: string;
  oldWeight: number;
  newWeight: number;
  /** Changing it (a new record) restarts the interleaving. */
  updatedAt: number;
}

interface Smooth {
  record: VersionWeightsRecord;
  currentOld: number;
  currentNew: number;
}

export class VersionChooser {
  readonly #state = new Map<string, Smooth>();

  /**
   * The version to use for one request to `slice`, given the versions that have a live instance now.
   * Undefined when neither weighted version is available (the caller then uses whatever is available).
   */
  choose(
    slice: string,
    record: VersionWeightsRecord,
    available: (version: string) => boolean,
  ): string | undefined {
    const hasOld = available(record.oldVersion) && record.oldWeight > 0;
    const hasNew = available(record.newVersion) && record.newWeight > 0;
    if (hasOld && hasNew) return this.#interleave(slice, record);
    if (hasNew) return record.newVersion;
    if (hasOld) return record.oldVersion;
    // A weight of 0 excludes its version only while the other one can serve.
    if (available(record.newVersion)) return record.newVersion;
    if (available(record.oldVersion)) return record.oldVersion;
    return undefined;
  }

  /** Forgets the interleaving state of slices no longer weighted. */
  retain(slices: ReadonlySet<string>): void {
    for (const slice of this.#state.keys()) if (!slices.has(slice)) this.#state.delete(slice);
  }

  #interleave(slice: string, record: VersionWeightsRecord): string {
    let s = this.#state.get(slice);
    if (!s || !sameRecord(s.record, record)) {
      s = { record, currentOld: 0, currentNew: 0 };
      this.#state.set(slice, s);
    }
    const total = record.oldWeight + record.newWeight;
    s.currentOld += record.oldWeight;
    s.currentNew += record.newWeight;
    // Ties go to the old version: a canary starts by serving the known-good one.
    if (s.currentNew > s.currentOld) {
      s.currentNew -= total;
      return record.newVersion;
    }
    s.currentOld -= total;
    return record.oldVersion;
  }
}

function sameRecord(a: VersionWeightsRecord, b: VersionWeightsRecord): boolean {
  return a.oldVersion === b.oldVersion && a.newVersion === b.newVersion && a.oldWeight === b.oldWeight &&
    a.newWeight === b.newWeight && a.updatedAt === b.updatedAt;
}
