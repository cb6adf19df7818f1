/**
 * Artifact coordinates (`group:artifact:version`), their version-less base (`group:artifact`) and version ranges
 * (`^1.2.0`, `~1.2.0`, `1.2.3`, `>=1.0.0 <2.0.0`). Versions are strict semantic versions; range logic is npm's
 * `semver` package, so `^`, `~`, comparators and prerelease rules behave exactly as npm documents them.
 */

// @ts-types="@types/semver"
import semver from "semver";
import { AetherError } from "./errors.ts";

/** `group:artifact`, for example `org.example:inventory`. */
export interface ArtifactBase {
  readonly group: string;
  readonly artifact: string;
}

/** `group:artifact:version`, for example `org.example:inventory:1.2.0`. */
export interface ArtifactCoordinates extends ArtifactBase {
  readonly version: string;
}

/** A parsed version range; `raw` is what the author wrote, `normalized` is semver's canonical form. */
export interface VersionRange {
  readonly raw: string;
  readonly normalized: string;
}

/** Dotted segments of lower-case letters, digits, '-' and '_', each starting with a letter or digit. */
const GROUP = /^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*$/;
/** Lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit. */
const ARTIFACT = /^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$/;
const MAX_PART_LENGTH = 128;

function bad(where: string, message: string, field?: string): AetherError {
  return new AetherError("bad_request", `${where}: ${message}`, field ? { field } : {});
}

function checkGroup(group: string, text: string, where: string): void {
  if (group === "") {
    throw bad(where, `"${text}" has an empty group (expected group:artifact[:version])`, "group");
  }
  if (group.length > MAX_PART_LENGTH || !GROUP.test(group)) {
    throw bad(
      where,
      `group "${group}" in "${text}" is not valid (dot-separated lower-case letters, digits, '-' or '_', ` +
        `for example org.example)`,
      "group",
    );
  }
}

function checkArtifact(artifact: string, text: string, where: string): void {
  if (artifact === "") throw bad(where, `"${text}" has an empty artifact name`, "artifact");
  if (artifact.length > MAX_PART_LENGTH || !ARTIFACT.test(artifact)) {
    throw bad(
      where,
      `artifact "${artifact}" in "${text}" is not valid (lower-case letters, digits, '.', '-' or '_', ` +
        `for example inventory-service)`,
      "artifact",
    );
  }
}

/** True when `version` is a strict semantic version such as `1.2.0` or `0.0.1-test` (no `v` prefix). */
export function isVersion(version: string): boolean {
  return semver.valid(version) === version;
}

export function parseVersion(version: string, where = "version"): string {
  if (
    typeof version === "string" && version.includes("+") && isVersion(version.slice(0, version.indexOf("+")))
  ) {
    // Build metadata does not take part in precedence, so two "different" versions would be one for ranges.
    throw bad(
      where,
      `version "${version}" carries build metadata ('+...'), which Aether does not accept`,
      "version",
    );
  }
  if (!isVersion(version)) {
    throw bad(
      where,
      `version "${version}" is not a semantic version (MAJOR.MINOR.PATCH with optional -prerelease, e.g. 1.2.0)`,
      "version",
    );
  }
  return version;
}

/** Parses `group:artifact`. */
export function parseArtifactBase(text: string, where = "artifact"): ArtifactBase {
  if (typeof text !== "string") throw bad(where, `expected a string "group:artifact", got ${typeof text}`);
  const parts = text.split(":");
  if (parts.length !== 2) {
    throw bad(where, `"${text}" is not group:artifact (found ${parts.length} part(s) separated by ':')`);
  }
  const [group, artifact] = parts;
  checkGroup(group, text, where);
  checkArtifact(artifact, text, where);
  return { group, artifact };
}

/** Parses `group:artifact:version`. */
export function parseCoordinates(text: string, where = "artifact"): ArtifactCoordinates {
  if (typeof text !== "string") {
    throw bad(where, `expected a string "group:artifact:version", got ${typeof text}`);
  }
  const parts = text.split(":");
  if (parts.length !== 3) {
    throw bad(
      where,
      `"${text}" is not group:artifact:version (found ${parts.length} part(s) separated by ':')`,
    );
  }
  const [group, artifact, version] = parts;
  checkGroup(group, text, where);
  checkArtifact(artifact, text, where);
  if (version === "") throw bad(where, `"${text}" has an empty version`, "version");
  parseVersion(version, where);
  return { group, artifact, version };
}

export function isCoordinates(text: string): boolean {
  try {
    parseCoordinates(text);
    return true;
  } catch {
    return false;
  }
}

export function formatBase(base: ArtifactBase): string {
  return `${base.group}:${base.artifact}`;
}

export function formatCoordinates(coordinates: ArtifactCoordinates): string {
  return `${coordinates.group}:${coordinates.artifact}:${coordinates.version}`;
}

/** The `group:artifact` part of coordinates given as text or parsed. */
export function baseOf(coordinates: ArtifactCoordinates | string): string {
  const parsed = typeof coordinates === "string" ? parseCoordinates(coordinates) : coordinates;
  return formatBase(parsed);
}

/** Parses a version range: `^1.2.0`, `~1.2.0`, `1.2.3` (exact), `>=1.0.0 <2.0.0`, `1.x`, `*`. */
export function parseVersionRange(raw: string, where = "version range"): VersionRange {
  if (typeof raw !== "string" || raw.trim() === "") {
    throw bad(where, `expected a version range such as ^1.2.0, got ${JSON.stringify(raw)}`, "range");
  }
  const normalized = semver.validRange(raw);
  if (normalized === null) {
    throw bad(
      where,
      `"${raw}" is not a version range (examples: ^1.2.0, ~1.2.0, 1.2.3, >=1.0.0 <2.0.0)`,
      "range",
    );
  }
  return { raw, normalized };
}

export function isVersionRange(raw: string): boolean {
  return typeof raw === "string" && raw.trim() !== "" && semver.validRange(raw) !== null;
}

/** True when `version` lies in `range`. Prereleases match only ranges that name the same MAJOR.MINOR.PATCH. */
export function satisfies(version: string, range: VersionRange | string): boolean {
  const r = typeof range === "string" ? parseVersionRange(range) : range;
  return semver.satisfies(parseVersion(version), r.normalized);
}

/** The highest of `versions` in `range`, or undefined. Invalid versions in the list are ignored. */
export function maxSatisfying(versions: readonly string[], range: VersionRange | string): string | undefined {
  const r = typeof range === "string" ? parseVersionRange(range) : range;
  return semver.maxSatisfying(versions.filter(isVersion), r.normalized) ?? undefined;
}

/** Negative, zero or positive, by semantic-version precedence. */
export function compareVersions(a: string, b: string): number {
  return semver.compare(parseVersion(a), parseVersion(b));
}
