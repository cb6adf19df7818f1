/**
 * The repository as a node feature: the node builds one ArtifactRepository with `startRepository(options)`
 * and hands its `fetchArtifact` to the features that need bundles (deployment). That is the only way to the
 * repository from other features.
 */

import type { Hono } from "hono";
import { artifactRoutes } from "./api.ts";
import {
  ArtifactRepository,
  type FetchedArtifact,
  type RepositoryOptions,
  type RepositoryStatus,
} from "./repository.ts";

/** The running feature: what later features use, its API routes, status and stop hook. */
export interface RepositoryFeature {
  readonly name: "repository";
  /** A published artifact's manifest and verified bundle (fetched from a holder when this node lacks it). */
  fetchArtifact(coordinates: string): Promise<FetchedArtifact>;
  readonly api: Hono;
  status(): RepositoryStatus;
  stop(): Promise<void>;
}

export function startRepository(options: RepositoryOptions): RepositoryFeature {
  const repository = new ArtifactRepository(options);
  return {
    name: "repository",
    fetchArtifact: (coordinates) => repository.fetchArtifact(coordinates),
    api: artifactRoutes(repository, options.log.with({ component: "repository-api" })),
    status: () => repository.status(),
    stop: () => repository.stop(),
  };
}
