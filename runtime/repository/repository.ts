/**
 * The artifact repository of one node: bundles as content-addressed blobs on this node's disk, their metadata
 * in the replicated KV store (`artifacts/{g}:{a}:{v}` → ArtifactRecord), and the mesh protocol that copies
 * blobs between nodes.
 *
 * - Push: the bundle is stored here, then pushed to other connected members until `replicas` nodes (this one
 *   included) hold it durably, and only then is the record created, with compare-and-set on "absent", so of
 *   two concurrent pushes of one version exactly one creates it. The other gets 409 (other content) or the
 *   winner's record (the same content). A version's record is never replaced: versions are immutable.
 * - Fetch: a node that needs a blob it lacks (or whose copy turned out corrupt) asks the connected holders in
 *   record order, then any other connected member, verifies the hash, stores it and adds itself to `holders`.
 * - Delete: refused while a blueprint, target, routing weight or instance uses the version; otherwise the
 *   record goes and every node drops the blob when it applies the delete (unless another version has the same
 *   bytes, or a push of them is in flight here).
 * - Maintenance: when the node opens, every blob is verified; periodically, blobs this node should hold (it is
 *   listed in `holders`) but lacks are fetched, and blobs no record references (a push that failed after
 *   copying) are removed once they are older than `orphanGraceMs`.
 */

import {
  AetherError,
  type Clock,
  compareVersions,
  type Logger,
  type NodeId,
  parseArtifactBase,
  parseCoordinates,
} from "../core/mod.ts";
import type { KvCommand, KvEntry, KvEvent } from "../kv/mod.ts";
import { type ArtifactRecord, encodeEntry, KEY_PREFIXES, kvKeys, kvPrefixes } from "../model/mod.ts";
import type { SliceManifest } from "../../slices/host.ts";
import { BlobStore, CorruptBlobError } from "./blob_store.ts";
import { BlobTransfers, type TransferMesh, type TransferStats } from "./_transfer.ts";
import { fetchCandidates, replicaCandidates, replicaCount } from "./_protocol.ts";
import { artifactRecordOf, coordinatesOfKey, type StateReader, usersOf, withHolder } from "./_records.ts";
import type { CheckedUpload } from "./_upload.ts";

export const DEFAULT_MAX_BUNDLE_BYTES = 16 * 1024 * 1024;
/** Uploads being replicated at once on one node; more get 503 (each holds its bundle in memory). */
const MAX_CONCURRENT_PUSHES = 4;
/** A blob received from a peer's push stays even without a record this long (its record may be on the way). */
const RECEIVED_PIN_MS = 10 * 60_000;
const HOLDER_UPDATE_ATTEMPTS = 5;

/** The replicated-store access the repository needs; the node's `ctx.kv` fits. */
export interface RepositoryKv {
  write(
    command: KvCommand,
    options?: { timeoutMs?: number },
  ): Promise<{ revision: number; succeeded?: boolean }>;
  get(key: string, options?: { consistent?: boolean; timeoutMs?: number }): Promise<KvEntry | undefined>;
}

export interface RepositoryOptions {
  self: NodeId;
  members: readonly NodeId[];
  dataDir: string;
  log: Logger;
  clock: Clock;
  mesh: TransferMesh;
  kv: RepositoryKv;
  /** The node's current replicated state (replaced when a snapshot is installed). */
  state(): StateReader;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  /** Caught up with the cluster (maintenance that deletes waits for this). */
  ready(): boolean;
  /** fsync blobs before they count as stored (default true). */
  fsync?: boolean;
  /** Nodes a push must reach; default min(3, members). */
  replicas?: number;
  maxBundleBytes?: number;
  maintenanceIntervalMs?: number;
  orphanGraceMs?: number;
  /** How long a push waits for enough members to be connected before it gives up (default 2 s). */
  connectWaitMs?: number;
  /** Transfer idle timeout (tests shorten it). */
  transferIdleTimeoutMs?: number;
}

export interface PushResult {
  /** False when the same content was already published under these coordinates (a no-op). */
  created: boolean;
  coordinates: string;
  record: ArtifactRecord;
}

export interface ArtifactSummary {
  coordinates: string;
  sha256: string;
  sizeBytes: number;
  holders: NodeId[];
  pushedAt: number;
}

export interface FetchedArtifact {
  manifest: SliceManifest;
  bundle: Uint8Array;
}

export interface BundleRead extends FetchedArtifact {
  record: ArtifactRecord;
  /** "local", or the node it was fetched from. */
  source: "local" | NodeId;
}

/** What the sandbox's executor takes as an artifact (`ArtifactSource` in runtime/sandbox/executor.ts). */
export interface LazyArtifact {
  manifest: SliceManifest;
  bundle: () => Promise<Uint8Array>;
}

export interface RepositoryStatus {
  blobs: number;
  bytes: number;
  replicas: number;
  maxBundleBytes: number;
  pushes: number;
  noopPushes: number;
  conflicts: number;
  fetchedFromPeers: number;
  corruptDetected: number;
  blobsDropped: number;
  transfers: TransferStats;
}

export class ArtifactRepository {
  readonly store: BlobStore;
  readonly #o: RepositoryOptions;
  readonly #transfers: BlobTransfers;
  readonly #log: Logger;
  /** `artifacts/` key → sha-256 of its blob, to know what a delete event removed. */
  readonly #shaByKey = new Map<string, string>();
  readonly #decoded = new Map<string, { modRevision: number; record: ArtifactRecord | undefined }>();
  /** Pushes of a blob in progress on this node (count per sha-256). */
  readonly #pushing = new Map<string, number>();
  /** Blobs received from a peer's push: kept until their record arrives or the pin expires. */
  readonly #receivedUntil = new Map<string, number>();
  readonly #fetching = new Map<string, Promise<{ bytes: Uint8Array; from: NodeId }>>();
  readonly #unsubscribe: (() => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #maintaining: Promise<void> = Promise.resolve();
  #verifiedOnOpen = false;
  #stopped = false;
  readonly #counts = {
    blobs: 0,
    bytes: 0,
    pushes: 0,
    noopPushes: 0,
    conflicts: 0,
    fetchedFromPeers: 0,
    blobsDropped: 0,
  };

  constructor(options: RepositoryOptions) {
    this.#o = options;
    this.#log = options.log.with({ component: "repository" });
    this.store = new BlobStore({ dataDir: options.dataDir, fsync: options.fsync, log: this.#log });
    this.#transfers = new BlobTransfers({
      self: options.self,
      mesh: options.mesh,
      store: this.store,
      log: this.#log,
      maxBytes: this.maxBundleBytes,
      idleTimeoutMs: options.transferIdleTimeoutMs,
      onReceived: (sha256) => {
        // The pin keeps a blob whose record may still be on its way. A blob a record already references needs
        // none: a pin would outlive that record's delete (a push of a published version through a member that
        // had not applied its record yet sends the blob again, and the record's put event never comes again).
        if (!this.#referenced(sha256)) this.#receivedUntil.set(sha256, this.#o.clock.now() + RECEIVED_PIN_MS);
        void this.#countBlobs();
      },
      onCorrupt: (sha256) => this.#repairSoon(sha256),
    });
    this.#indexRecords();
    this.#unsubscribe.push(
      options.onEvents((events) => this.#applied(events)),
      options.onReset(() => this.#indexRecords()),
    );
    this.#schedule(1_000);
  }

  get maxBundleBytes(): number {
    return this.#o.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  }

  /** The default number of nodes a push must reach. */
  get replicas(): number {
    return this.#o.replicas ?? Math.min(3, this.#o.members.length);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const off of this.#unsubscribe) off();
    this.#transfers.stop();
    await this.#maintaining.catch(() => {});
  }

  // ------------------------------------------------------------------------------------------------- reads

  /** The record of `coordinates` in this node's copy of the state. */
  record(coordinates: string): ArtifactRecord | undefined {
    const key = kvKeys.artifact(coordinates);
    const entry = this.#o.state().get(key);
    return entry ? this.#decode(entry) : undefined;
  }

  /** Every published artifact, by group:artifact then version. */
  list(): ArtifactSummary[] {
    const out: ArtifactSummary[] = [];
    for (const entry of this.#o.state().range(KEY_PREFIXES.artifacts)) {
      const record = this.#decode(entry);
      if (!record) continue;
      const { sha256, sizeBytes, holders, pushedAt } = record;
      out.push({ coordinates: coordinatesOfKey(entry.key), sha256, sizeBytes, holders, pushedAt });
    }
    return out.sort((a, b) => {
      const [ga, aa, va] = a.coordinates.split(":");
      const [gb, ab, vb] = b.coordinates.split(":");
      const base = `${ga}:${aa}`.localeCompare(`${gb}:${ab}`);
      return base !== 0 ? base : compareVersions(va, vb);
    });
  }

  /** Published versions of `group:artifact`, lowest first. */
  versions(base: string): string[] {
    parseArtifactBase(base, "artifact");
    const prefix = kvPrefixes.artifactVersions(base);
    return this.#o.state().range(prefix)
      .filter((entry) => this.#decode(entry) !== undefined)
      .map((entry) => entry.key.slice(prefix.length))
      .sort(compareVersions);
  }

  async holdsLocally(sha256: string): Promise<boolean> {
    return await this.store.has(sha256);
  }

  /**
   * The bundle of `coordinates`: this node's verified copy, or (when it has none or its copy is corrupt) one
   * fetched from a holder, verified and stored here. Throws not_found for an unpublished version and
   * unavailable when no reachable node can serve it.
   */
  async bundle(coordinates: string): Promise<BundleRead> {
    const record = await this.#publishedRecord(coordinates);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await this.store.read(record.sha256);
    } catch (e) {
      if (!(e instanceof CorruptBlobError)) throw e;
      // Quarantined; a good copy is fetched below.
    }
    if (bytes) return { manifest: record.manifest, bundle: bytes, record, source: "local" };
    const fetched = await this.#fetchBlob(record.sha256, record.holders);
    void this.#addSelfAsHolder(coordinates);
    return { manifest: record.manifest, bundle: fetched.bytes, record, source: fetched.from };
  }

  /**
   * What the deployment layer calls to run an instance: the manifest and the verified bundle, fetched from a
   * holder if this node has no copy.
   */
  async fetchArtifact(coordinates: string): Promise<FetchedArtifact> {
    const { manifest, bundle } = await this.bundle(coordinates);
    return { manifest, bundle };
  }

  /** The manifest now and the bundle on demand (the sandbox executor fetches inside LOADING). */
  artifactSource(coordinates: string): LazyArtifact | undefined {
    const record = this.record(coordinates);
    if (!record) return undefined;
    return {
      manifest: record.manifest,
      bundle: async () => (await this.bundle(coordinates)).bundle,
    };
  }

  // ------------------------------------------------------------------------------------------------- push

  /**
   * Publishes a checked upload (see `_upload.ts`). Resolves once the record is committed, which happens only
   * after `replicas` nodes stored the bundle durably.
   */
  async push(upload: CheckedUpload, options: { replicas?: number } = {}): Promise<PushResult> {
    const { manifest, bundle } = upload;
    const coordinates = manifest.coordinates;
    const key = kvKeys.artifact(coordinates);
    const replicas = replicaCount(this.#o.members.length, options.replicas, this.#o.replicas);
    if (typeof replicas === "string") throw new AetherError("bad_request", replicas, { field: "replicas" });
    const existing = this.record(coordinates);
    if (existing) return this.#samePush(coordinates, existing, manifest);
    const inFlight = [...this.#pushing.values()].reduce((a, b) => a + b, 0);
    if (inFlight >= MAX_CONCURRENT_PUSHES) {
      throw new AetherError(
        "overloaded",
        `${inFlight} pushes are being replicated on this node; retry shortly`,
      );
    }
    const sha256 = manifest.sha256;
    this.#pushing.set(sha256, (this.#pushing.get(sha256) ?? 0) + 1);
    /** Set once the record may have been written: from then on the local copy must stay, whatever happens. */
    let committing = false;
    try {
      const { clock } = this.#o;
      const startedAt = clock.now();
      let storeMs = 0;
      // The local copy and the replicas are written at the same time; the record waits for all of them, and a
      // failure of either is reported only once both have settled (so no write is still running afterwards).
      const [stored, replicated] = await Promise.allSettled([
        this.store.put(sha256, bundle).then(() => storeMs = clock.now() - startedAt),
        this.#replicate(sha256, bundle, replicas - 1),
      ]);
      if (stored.status === "rejected") throw stored.reason;
      if (replicated.status === "rejected") throw replicated.reason;
      const replicatedAt = clock.now();
      const record: ArtifactRecord = {
        manifest,
        sha256,
        sizeBytes: bundle.length,
        holders: [this.#o.self, ...[...replicated.value].sort()],
        pushedAt: Math.round(this.#o.clock.now()),
      };
      committing = true;
      try {
        await this.#o.kv.write({ type: "put", key, value: encodeEntry(key, record), ifRevision: 0 });
      } catch (e) {
        if (!(e instanceof AetherError && e.code === "compare_failed")) throw e;
        // Another push of this version committed first.
        const current = await this.#o.kv.get(key, { consistent: true });
        const winner = current && this.#decode(current);
        if (!winner) throw new AetherError("conflict", `${coordinates} changed during the push; push again`);
        return this.#samePush(coordinates, winner, manifest);
      }
      this.#counts.pushes++;
      void this.#countBlobs();
      this.#log.info("artifact published", {
        coordinates,
        sha256,
        sizeBytes: bundle.length,
        holders: record.holders,
        storeMs: Math.round(storeMs),
        replicateMs: Math.round(replicatedAt - startedAt),
        commitMs: Math.round(clock.now() - replicatedAt),
      });
      return { created: true, coordinates, record };
    } finally {
      const left = (this.#pushing.get(sha256) ?? 1) - 1;
      if (left > 0) this.#pushing.set(sha256, left);
      else this.#pushing.delete(sha256);
      // A push that failed before its commit leaves no copy here (copies it made on peers are swept later).
      if (!committing && !this.#referenced(sha256) && !this.#pinned(sha256)) {
        await this.#drop(sha256, "its push failed before it was published");
      }
    }
  }

  /** A push of a version that exists: a no-op with the same bundle, 409 with another. */
  #samePush(coordinates: string, existing: ArtifactRecord, manifest: SliceManifest): PushResult {
    if (existing.sha256 === manifest.sha256) {
      this.#counts.noopPushes++;
      return { created: false, coordinates, record: existing };
    }
    this.#counts.conflicts++;
    throw new AetherError(
      "conflict",
      `${coordinates} is already published with other content (sha-256 ${existing.sha256}, this upload ` +
        `${manifest.sha256}); versions are immutable: publish a new version`,
      { coordinates, sha256: existing.sha256 },
    );
  }

  /** Pushes to other connected members until `needed` of them stored the blob; returns who did. */
  async #replicate(sha256: string, bytes: Uint8Array, needed: number): Promise<NodeId[]> {
    if (needed === 0) return [];
    const { self, members, mesh, clock } = this.#o;
    const reachable = () => replicaCandidates(self, members, (id) => mesh.isConnected(id), sha256);
    let candidates = reachable();
    // A member that is reconnecting (a restart, a dropped connection) is usually back within a second or two.
    const deadline = clock.now() + (this.#o.connectWaitMs ?? 2_000);
    while (candidates.length < needed && clock.now() < deadline && !this.#stopped) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      candidates = reachable();
    }
    if (candidates.length < needed) {
      throw new AetherError(
        "unavailable",
        `the push needs ${needed + 1} nodes to store the bundle but only ${candidates.length + 1} of ` +
          `${members.length} members are reachable from ${self}; nothing was published`,
      );
    }
    const stored: NodeId[] = [];
    const failures: string[] = [];
    let next = 0;
    const worker = async () => {
      while (stored.length < needed && next < candidates.length) {
        const peer = candidates[next++];
        try {
          await this.#transfers.push(peer, sha256, bytes);
          stored.push(peer);
          return;
        } catch (e) {
          failures.push(`${peer}: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: needed }, worker));
    if (stored.length < needed) {
      throw new AetherError(
        "unavailable",
        `the bundle was stored on ${stored.length + 1} of the ${needed + 1} nodes the push needs ` +
          `(${failures.join("; ")}); nothing was published`,
      );
    }
    return stored;
  }

  // ----------------------------------------------------------------------------------------------- delete

  /** Deletes a version that nothing uses; every node drops its blob as it applies the delete. */
  async delete(coordinates: string): Promise<{ revision: number }> {
    const { group, artifact } = parseCoordinates(coordinates, "artifact");
    const key = kvKeys.artifact(coordinates);
    // A linearizable read first, so the usage check below sees every write acknowledged before this request.
    const entry = await this.#o.kv.get(key, { consistent: true });
    if (!entry) {
      throw new AetherError("not_found", `artifact ${coordinates} is not published`, { coordinates });
    }
    const users = usersOf(this.#o.state(), coordinates);
    if (users.length > 0) {
      throw new AetherError(
        "conflict",
        `artifact ${coordinates} is in use by ${users.join("; ")}; undeploy it before deleting it`,
        { coordinates, usedBy: users },
      );
    }
    const targetKey = kvKeys.target(`${group}:${artifact}`);
    const targetRevision = this.#o.state().get(targetKey)?.modRevision ?? 0;
    // The target of the slice must not change between the check and the delete (a deploy racing this).
    const result = await this.#o.kv.write({
      type: "txn",
      compare: [{ key, modRevision: entry.modRevision }, { key: targetKey, modRevision: targetRevision }],
      success: [{ op: "delete", key }],
      failure: [],
    });
    if (result.succeeded === false) {
      throw new AetherError("conflict", `artifact ${coordinates} or its target changed meanwhile; try again`);
    }
    this.#log.info("artifact deleted", { coordinates });
    return { revision: result.revision };
  }

  // ------------------------------------------------------------------------------------------------ status

  status(): RepositoryStatus {
    return {
      blobs: this.#counts.blobs,
      bytes: this.#counts.bytes,
      replicas: this.replicas,
      maxBundleBytes: this.maxBundleBytes,
      pushes: this.#counts.pushes,
      noopPushes: this.#counts.noopPushes,
      conflicts: this.#counts.conflicts,
      fetchedFromPeers: this.#counts.fetchedFromPeers,
      corruptDetected: this.store.corruptDetected,
      blobsDropped: this.#counts.blobsDropped,
      transfers: { ...this.#transfers.stats },
    };
  }

  // ------------------------------------------------------------------------------------------- internals

  async #publishedRecord(coordinates: string): Promise<ArtifactRecord> {
    parseCoordinates(coordinates, "artifact");
    const local = this.record(coordinates);
    if (local) return local;
    // Perhaps published a moment ago through another node and not applied here yet.
    const entry = await this.#o.kv.get(kvKeys.artifact(coordinates), { consistent: true });
    const record = entry && this.#decode(entry);
    if (!record) {
      throw new AetherError("not_found", `artifact ${coordinates} is not published`, { coordinates });
    }
    return record;
  }

  #decode(entry: KvEntry): ArtifactRecord | undefined {
    const cached = this.#decoded.get(entry.key);
    if (cached?.modRevision === entry.modRevision) return cached.record;
    const record = artifactRecordOf(entry);
    if (!record) this.#log.warn("undecodable artifact record", { key: entry.key });
    this.#decoded.set(entry.key, { modRevision: entry.modRevision, record });
    return record;
  }

  /** Fetches a blob from the peers (one fetch per blob at a time), verifies and stores it here. */
  #fetchBlob(sha256: string, holders: readonly NodeId[]): Promise<{ bytes: Uint8Array; from: NodeId }> {
    const running = this.#fetching.get(sha256);
    if (running) return running;
    const fetch = (async () => {
      const { self, members, mesh } = this.#o;
      const candidates = fetchCandidates(self, members, holders, (id) => mesh.isConnected(id));
      if (candidates.length === 0) {
        throw new AetherError(
          "unavailable",
          `blob ${sha256} is not on this node and no holder (${holders.join(", ")}) is reachable`,
        );
      }
      const failures: string[] = [];
      for (const peer of candidates) {
        try {
          const bytes = await this.#transfers.fetch(peer, sha256);
          await this.store.put(sha256, bytes);
          this.#counts.fetchedFromPeers++;
          void this.#countBlobs();
          this.#log.info("blob fetched from a peer", { sha256, from: peer, sizeBytes: bytes.length });
          return { bytes, from: peer };
        } catch (e) {
          failures.push(`${peer}: ${(e as Error).message}`);
        }
      }
      throw new AetherError("unavailable", `no node could serve blob ${sha256}: ${failures.join("; ")}`);
    })();
    this.#fetching.set(sha256, fetch);
    fetch.then(() => this.#fetching.delete(sha256), () => this.#fetching.delete(sha256));
    return fetch;
  }

  /** Records this node as a holder (compare-and-set, retried on a concurrent change); best effort. */
  async #addSelfAsHolder(coordinates: string): Promise<void> {
    const key = kvKeys.artifact(coordinates);
    for (let attempt = 0; attempt < HOLDER_UPDATE_ATTEMPTS && !this.#stopped; attempt++) {
      const entry = this.#o.state().get(key);
      const record = entry && this.#decode(entry);
      if (!entry || !record || record.holders.includes(this.#o.self)) return;
      try {
        const value = encodeEntry(key, withHolder(record, this.#o.self));
        await this.#o.kv.write({ type: "put", key, value, ifRevision: entry.modRevision });
        return;
      } catch (e) {
        if (!(e instanceof AetherError && e.code === "compare_failed")) {
          this.#log.debug("could not record this node as a holder", {
            coordinates,
            error: (e as Error).message,
          });
          return;
        }
      }
    }
  }

  #indexRecords(): void {
    this.#shaByKey.clear();
    this.#decoded.clear();
    for (const entry of this.#o.state().range(KEY_PREFIXES.artifacts)) {
      const record = this.#decode(entry);
      if (record) this.#shaByKey.set(entry.key, record.sha256);
    }
  }

  #referenced(sha256: string): boolean {
    for (const sha of this.#shaByKey.values()) if (sha === sha256) return true;
    return false;
  }

  #pinned(sha256: string): boolean {
    return this.#pushing.has(sha256) || (this.#receivedUntil.get(sha256) ?? 0) > this.#o.clock.now();
  }

  #applied(events: readonly KvEvent[]): void {
    for (const event of events) {
      if (!event.key.startsWith(KEY_PREFIXES.artifacts)) continue;
      if (event.type === "put" && event.value) {
        const record = this.#decode({
          key: event.key,
          value: event.value,
          modRevision: event.revision,
          createRevision: 0,
          version: 0,
        });
        if (!record) continue;
        this.#shaByKey.set(event.key, record.sha256);
        this.#receivedUntil.delete(record.sha256);
        if (record.holders.includes(this.#o.self)) void this.#ensureLocal(record);
      } else if (event.type === "delete") {
        const sha256 = this.#shaByKey.get(event.key);
        this.#shaByKey.delete(event.key);
        this.#decoded.delete(event.key);
        if (sha256 && !this.#referenced(sha256) && !this.#pinned(sha256)) void this.#drop(sha256, event.key);
      }
    }
  }

  async #drop(sha256: string, because: string): Promise<void> {
    try {
      if (await this.store.remove(sha256)) {
        this.#counts.blobsDropped++;
        this.#log.info("blob dropped", { sha256, because });
        await this.#countBlobs();
      }
    } catch (e) {
      this.#log.warn("could not drop a blob", { sha256, error: (e as Error).message });
    }
  }

  /** A blob this node is listed as holding but lacks (lost disk, corrupt copy): fetch it in the background. */
  async #ensureLocal(record: ArtifactRecord): Promise<void> {
    if (this.#stopped) return;
    try {
      if (await this.store.has(record.sha256)) return;
      await this.#fetchBlob(record.sha256, record.holders);
    } catch (e) {
      this.#log.warn("could not restore a blob this node holds", {
        sha256: record.sha256,
        error: (e as Error).message,
      });
    }
  }

  /** Our copy was found corrupt while serving a peer: fetch a good one if this node is meant to hold it. */
  #repairSoon(sha256: string): void {
    for (const [key, sha] of this.#shaByKey) {
      if (sha !== sha256) continue;
      const entry = this.#o.state().get(key);
      const record = entry && this.#decode(entry);
      if (record) void this.#ensureLocal(record);
      return;
    }
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#maintaining = this.#maintain()
        .catch((e) => this.#log.error("repository maintenance failed", { error: (e as Error).message }))
        .finally(() => this.#schedule(this.#o.maintenanceIntervalMs ?? 60_000));
    }, delayMs);
  }

  /** Verify on open; then restore what this node should hold and remove orphans (only when caught up). */
  async #maintain(): Promise<void> {
    if (!this.#verifiedOnOpen) {
      const corrupt = await this.store.verifyAll();
      this.#verifiedOnOpen = true;
      if (corrupt.length > 0) this.#log.warn("corrupt blobs found on open", { count: corrupt.length });
    }
    if (this.#stopped || !this.#o.ready()) return this.#countBlobs();
    for (const entry of this.#o.state().range(KEY_PREFIXES.artifacts)) {
      const record = this.#decode(entry);
      if (record?.holders.includes(this.#o.self)) await this.#ensureLocal(record);
      if (this.#stopped) return;
    }
    const graceMs = this.#o.orphanGraceMs ?? 10 * 60_000;
    const now = this.#o.clock.now();
    for (const blob of await this.store.list()) {
      if (this.#referenced(blob.sha256) || this.#pinned(blob.sha256)) continue;
      if (now - blob.mtimeMs < graceMs) continue;
      await this.#drop(blob.sha256, "no artifact record references it");
    }
    for (const [sha256, until] of this.#receivedUntil) if (until <= now) this.#receivedUntil.delete(sha256);
    await this.#countBlobs();
  }

  async #countBlobs(): Promise<void> {
    try {
      const stats = await this.store.stats();
      this.#counts.blobs = stats.blobs;
      this.#counts.bytes = stats.bytes;
    } catch (e) {
      this.#log.debug("could not count blobs", { error: (e as Error).message });
    }
  }
}
