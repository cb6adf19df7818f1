/**
 * The repository as a node feature: one ArtifactRepository per node, its API routes and its status. Other
 * features (deployment) reach the same instance as the node service "repository" (`ctx.services`) or with
 * `repositoryOf(ctx)`, which also works before the repository feature has started.
 */

import type { Feature, FeatureFactory, NodeContext } from "../node/context.ts";
import { artifactRoutes } from "./api.ts";
import { ArtifactRepository } from "./repository.ts";

/** The name the repository is provided under in `ctx.services`. */
export const REPOSITORY_SERVICE = "repository";

const REPOSITORIES = new WeakMap<NodeContext, ArtifactRepository>();

/** The node's artifact repository (created on first use). */
export function repositoryOf(ctx: NodeContext): ArtifactRepository {
  let repository = REPOSITORIES.get(ctx);
  if (!repository) {
    repository = new ArtifactRepository({
      self: ctx.self,
      members: ctx.members,
      dataDir: ctx.dataDir,
      log: ctx.log,
      clock: ctx.clock,
      mesh: ctx.mesh,
      kv: ctx.kv,
      state: () => ctx.state(),
      onEvents: (listener) => ctx.onEvents(listener),
      onReset: (listener) => ctx.onReset(listener),
      ready: () => ctx.ready(),
      fsync: ctx.flags.fsync !== "never",
      replicas: ctx.flags.artifactReplicas,
      maxBundleBytes: ctx.flags.artifactMaxBytes,
    });
    REPOSITORIES.set(ctx, repository);
    ctx.services.provide(REPOSITORY_SERVICE, repository);
  }
  return repository;
}

export const repositoryFeature: FeatureFactory = (ctx): Feature => {
  const repository = repositoryOf(ctx);
  return {
    name: "repository",
    api: artifactRoutes(repository, ctx.log.with({ component: "repository-api" })),
    status: () => repository.status(),
    stop: () => repository.stop(),
  };
};
