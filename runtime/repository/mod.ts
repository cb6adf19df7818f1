/**
 * The artifact repository: slice bundles as content-addressed blobs on every node's disk, their metadata in
 * the replicated KV store (`artifacts/{g}:{a}:{v}`), replication over the mesh, and the HTTP API under
 * /api/v1/artifacts. The node starts it with `startRepository(options)` and passes its
 * `fetchArtifact(coordinates)` to the deployment feature.
 */

export {
  ArtifactRepository,
  type ArtifactSummary,
  type BundleRead,
  DEFAULT_MAX_BUNDLE_BYTES,
  type FetchedArtifact,
  type LazyArtifact,
  type PushResult,
  type RepositoryKv,
  type RepositoryOptions,
  type RepositoryStatus,
} from "./repository.ts";
export { type BlobInfo, BlobStore, type BlobStoreOptions, CorruptBlobError } from "./blob_store.ts";
export { artifactRoutes } from "./api.ts";
export { type RepositoryFeature, startRepository } from "./feature.ts";
export { type CheckedUpload, checkUpload, type UploadInput, type UploadProblem } from "./_upload.ts";
export { CHUNK_BYTES, REPO_CHANNEL } from "./_protocol.ts";
