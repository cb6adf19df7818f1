/**
 * Content-addressed blob storage on one node's disk: `<dataDir>/blobs/<sha256>`.
 *
 * - A blob is written to `blobs/tmp/`, fsynced, renamed into place and the directory fsynced, so a reader (or
 *   a node restarted after a crash) sees either the whole blob or none of it. Leftover temporary files from a
 *   crash are removed when the store opens.
 * - Every read that hands a blob to someone else verifies its sha-256. A blob whose content no longer matches
 *   its name is moved to `blobs/quarantine/` (kept for inspection, the oldest dropped beyond a few) and the
 *   read fails with `CorruptBlobError`, so the caller fetches a good copy from another node.
 */

import { join } from "node:path";
import { AetherError, type Logger, randomHex } from "../core/mod.ts";
import { sha256Hex } from "../../slices/host.ts";

const SHA256 = /^[0-9a-f]{64}$/;
const MAX_QUARANTINED = 8;

/** A stored blob whose bytes no longer hash to its name; it has been moved out of the store. */
export class CorruptBlobError extends Error {
  constructor(readonly sha256: string, readonly actualSha256: string, readonly quarantinedAs: string) {
    super(
      `blob ${sha256} is corrupt on disk (its content hashes to ${actualSha256}); moved to ${quarantinedAs}`,
    );
    this.name = "CorruptBlobError";
  }
}

export interface BlobInfo {
  sha256: string;
  sizeBytes: number;
  /** Last modification (ms since the epoch): when the blob was stored. */
  mtimeMs: number;
}

export interface BlobStoreOptions {
  /** The node's data directory; blobs live under `<dataDir>/blobs/`. */
  dataDir: string;
  /** fsync blob and directory before a write counts as done (the node's --fsync policy). */
  fsync?: boolean;
  log?: Logger;
}

export interface BlobStoreStats {
  blobs: number;
  bytes: number;
  corruptDetected: number;
}

function checkSha(sha256: string): string {
  if (typeof sha256 !== "string" || !SHA256.test(sha256)) {
    throw new AetherError("bad_request", `"${sha256}" is not a sha-256 (64 lower-case hex digits)`);
  }
  return sha256;
}

function isNotFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound;
}

export class BlobStore {
  readonly dir: string;
  readonly #tmpDir: string;
  readonly #quarantineDir: string;
  readonly #fsync: boolean;
  readonly #log?: Logger;
  #corruptDetected = 0;

  /** Opens (creating) the store and removes temporary files a crash left behind. */
  constructor(options: BlobStoreOptions) {
    this.dir = join(options.dataDir, "blobs");
    this.#tmpDir = join(this.dir, "tmp");
    this.#quarantineDir = join(this.dir, "quarantine");
    this.#fsync = options.fsync ?? true;
    this.#log = options.log;
    Deno.mkdirSync(this.#tmpDir, { recursive: true });
    Deno.mkdirSync(this.#quarantineDir, { recursive: true });
    for (const entry of Deno.readDirSync(this.#tmpDir)) {
      Deno.removeSync(join(this.#tmpDir, entry.name), { recursive: true });
    }
  }

  pathOf(sha256: string): string {
    return join(this.dir, checkSha(sha256));
  }

  async has(sha256: string): Promise<boolean> {
    try {
      return (await Deno.stat(this.pathOf(sha256))).isFile;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /**
   * Stores `bytes` under its hash, which must be `sha256` (checked first: nothing that does not match is ever
   * written). Returns false when a copy was already there (it is replaced if it turns out to be corrupt).
   */
  async put(sha256: string, bytes: Uint8Array): Promise<boolean> {
    const path = this.pathOf(sha256);
    const actual = await sha256Hex(bytes);
    if (actual !== sha256) {
      throw new AetherError("bad_request", `blob content hashes to ${actual}, not ${sha256}; not stored`);
    }
    if (await this.has(sha256)) {
      try {
        await this.read(sha256);
        return false;
      } catch (e) {
        if (!(e instanceof CorruptBlobError) && !isNotFound(e)) throw e;
        // The corrupt copy is quarantined; write the good one below.
      }
    }
    const tmp = join(this.#tmpDir, `${sha256}.${randomHex(6)}.part`);
    try {
      const file = await Deno.open(tmp, { write: true, createNew: true });
      try {
        let written = 0;
        while (written < bytes.length) written += await file.write(bytes.subarray(written));
        if (this.#fsync) await file.syncData();
      } finally {
        file.close();
      }
      await Deno.rename(tmp, path);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
    if (this.#fsync) await this.#syncDir();
    return true;
  }

  /** The blob's bytes, verified; `undefined` when absent; throws CorruptBlobError (after quarantining it). */
  async read(sha256: string): Promise<Uint8Array | undefined> {
    const path = this.pathOf(sha256);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    const actual = await sha256Hex(bytes);
    if (actual === sha256) return bytes;
    const quarantinedAs = await this.#quarantine(sha256);
    this.#corruptDetected++;
    const error = new CorruptBlobError(sha256, actual, quarantinedAs);
    this.#log?.error("corrupt blob detected", { sha256, actual, quarantinedAs });
    throw error;
  }

  /** Removes a blob; false when it was not there. */
  async remove(sha256: string): Promise<boolean> {
    try {
      await Deno.remove(this.pathOf(sha256));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** Every blob on disk (names that are not a sha-256 are ignored). */
  async list(): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.isFile || !SHA256.test(entry.name)) continue;
      try {
        const stat = await Deno.stat(join(this.dir, entry.name));
        out.push({ sha256: entry.name, sizeBytes: stat.size, mtimeMs: stat.mtime?.getTime() ?? 0 });
      } catch (e) {
        if (!isNotFound(e)) throw e; // Removed meanwhile.
      }
    }
    return out.sort((a, b) => (a.sha256 < b.sha256 ? -1 : 1));
  }

  /** Reads and verifies every blob; corrupt ones are quarantined. Returns the hashes of the corrupt ones. */
  async verifyAll(): Promise<string[]> {
    const corrupt: string[] = [];
    for (const blob of await this.list()) {
      try {
        await this.read(blob.sha256);
      } catch (e) {
        if (e instanceof CorruptBlobError) corrupt.push(blob.sha256);
        else throw e;
      }
    }
    return corrupt;
  }

  async stats(): Promise<BlobStoreStats> {
    const blobs = await this.list();
    return {
      blobs: blobs.length,
      bytes: blobs.reduce((sum, b) => sum + b.sizeBytes, 0),
      corruptDetected: this.#corruptDetected,
    };
  }

  get corruptDetected(): number {
    return this.#corruptDetected;
  }

  async #quarantine(sha256: string): Promise<string> {
    const target = join(this.#quarantineDir, `${sha256}.${Date.now()}.${randomHex(3)}`);
    try {
      await Deno.rename(this.pathOf(sha256), target);
    } catch (e) {
      if (!isNotFound(e)) throw e; // Someone else moved it already.
    }
    await this.#pruneQuarantine();
    return target;
  }

  async #pruneQuarantine(): Promise<void> {
    const entries: { name: string; mtimeMs: number }[] = [];
    for await (const entry of Deno.readDir(this.#quarantineDir)) {
      const stat = await Deno.stat(join(this.#quarantineDir, entry.name)).catch(() => null);
      if (stat) entries.push({ name: entry.name, mtimeMs: stat.mtime?.getTime() ?? 0 });
    }
    entries.sort((a, b) => b.mtimeMs - a.mtimeMs);
    for (const old of entries.slice(MAX_QUARANTINED)) {
      await Deno.remove(join(this.#quarantineDir, old.name)).catch(() => {});
    }
  }

  /** Makes the rename durable: without it a power loss may forget the new directory entry. */
  async #syncDir(): Promise<void> {
    const dir = await Deno.open(this.dir, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  }
}
