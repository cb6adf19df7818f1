/** `artifacts/{group}:{artifact}:{version}`: the artifacts published to the cluster's repository. */

import type { NodeId } from "../core/mod.ts";
import { manifestProblems, type SliceManifest } from "../../slices/host.ts";
import { nodes } from "./_fields.ts";
import { type Check, FieldError, integer, join, object, refine, string, timestamp } from "./_validate.ts";

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * `artifacts/{g}:{a}:{v}`: a published artifact (written by the artifact repository, runtime/repository): its
 * manifest as `slices/manifest.ts` defines it, its bundle's hash and size (the same as the manifest's), and the
 * nodes holding the bundle on disk. Versions are immutable: the record of a version is created once and only
 * its `holders` change after that.
 */
export interface ArtifactRecord {
  manifest: SliceManifest;
  /** Lower-case hex sha-256 of the bundle (equals `manifest.sha256`). */
  sha256: string;
  /** Bytes of the bundle (equals `manifest.sizeBytes`). */
  sizeBytes: number;
  /** Nodes that stored the bundle durably; the first is the node that received the push. */
  holders: NodeId[];
  /** When the push was committed (ms since the epoch). */
  pushedAt: number;
}

/** The real manifest check (slices/manifest.ts), its first problem reported as a field error under `path`. */
const manifestCheck: Check<SliceManifest> = (value, path) => {
  const problems = manifestProblems(value);
  if (problems.length > 0) {
    const first = problems[0];
    const at = first.path === "(manifest)" ? path : join(path, first.path);
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
    throw new FieldError(at, `${at}: ${first.message}${more}`);
  }
  return value as SliceManifest;
};

export const artifactCheck: Check<ArtifactRecord> = refine(
  object({
    manifest: manifestCheck,
    sha256: string({ pattern: SHA256_HEX, expectation: "64 lower-case hex digits" }),
    sizeBytes: integer(0),
    holders: nodes,
    pushedAt: timestamp(),
  }),
  (value, path) => {
    for (const field of ["sha256", "sizeBytes"] as const) {
      if (value[field] !== value.manifest[field]) {
        const at = join(path, field);
        throw new FieldError(
          at,
          `${at} (${value[field]}) differs from the manifest's (${value.manifest[field]})`,
        );
      }
    }
  },
);
