/**
 * The repository as a node feature: the node builds one ArtifactRepository with `startRepository(options)`
 * and hands its `fetchArtifact` to the features that need bundles (deployment). That is the only way to the
 * repository from other features.
 */

import type { Hono } from "hono";
import { artifactRoutes } from "./api.ts";
import type { SliceManifest } from "../../slices/host.ts";
import { checkUpload } from "./_upload.ts";
import {
  ArtifactRepository,
  type FetchedArtifact,
  type PushResult,
  type RepositoryOptions,
  type RepositoryStatus,
} from "./repository.ts";

/** The running feature: what later features use, its API routes, status and stop hook. */
export interface RepositoryFeature {
  readonly name: "repository";
  /** A published artifact's manifest and verified bundle (fetched from a holder when this node lacks it). */
  fetchArtifact(coordinates: string): Promise<FetchedArtifact>;
  readonly api: Hono;
  /**
   * Publishes a bundled infrastructure service (runtime/infra-host bootstrap; the API refuses the reserved
   * group `aether.infra`). Like an upload: the same bundle again is a no-op, other content a 409.
   */
  publishBundled(manifest: SliceManifest, bundle: Uint8Array): Promise<PushResult>;
  /** The published record's sha-256 and holders, or undefined when `coordinates` is not published. */
  published(coordinates: string): { sha256: string; holders: readonly string[] } | undefined;
  status(): RepositoryStatus;
  stop(): Promise<void>;
}

export function startRepository(options: RepositoryOptions): RepositoryFeature {
  const repository = new ArtifactRepository(options);
  return {
    name: "repository",
    fetchArtifact: (coordinates) => repository.fetchArtifact(coordinates),
    api: artifactRoutes(repository, options.log.with({ component: "repository-api" })),
    publishBundled: async (manifest, bundle) =>
      repository.push(
        await checkUpload({ manifestText: JSON.stringify(manifest), bundle, maxBundleBytes: Infinity }),
      ),
    published: (coordinates) => {
      const record = repository.record(coordinates);
      return record ? { sha256: record.sha256, holders: record.holders } : undefined;
    },
    status: () => repository.status(),
    stop: () => repository.stop(),
  };
}
