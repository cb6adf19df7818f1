/**
 * Secrets for slices: values encrypted at rest with AES-256-GCM (WebCrypto) under the cluster master key, a
 * file given to every node (`--secrets-key-file`) and never written to the KV. The KV holds only ciphertexts
 * (`secrets/{name}`, SecretRecord) with a fresh 96-bit IV per version; the secret's name and version are the
 * additional authenticated data, so a ciphertext copied under another name or version does not decrypt.
 *
 * A slice reads a secret with `ctx.secrets.get("name")` only when its manifest declares it (`secrets: [...]`):
 * the check uses the manifest stored in the cluster's artifact records for the calling instance's
 * coordinates, which the host (not the slice) names. Every read, allowed or refused, is audited. Values are
 * never logged: errors name the secret, never its value.
 */

import { AetherError } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvState } from "../kv/mod.ts";
import {
  decodeSecretRecord,
  decodeValue,
  encodeSecretRecord,
  kvKeys,
  MAX_SECRET_BYTES,
  MAX_SECRET_VERSIONS,
  MAX_SECRETS,
  secretKeys,
  secretNameText,
  type SecretRecord,
  SECRETS_PREFIX,
} from "../model/mod.ts";

/** Bytes of the master key (AES-256). */
export const MASTER_KEY_BYTES = 32;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** A new master key file's text: 32 random bytes, base64, one line. */
export function newMasterKeyText(): string {
  return `${toBase64(crypto.getRandomValues(new Uint8Array(MASTER_KEY_BYTES)))}\n`;
}

/** Imports a master key from its file text; the error names `where` (the flag and file), never the text. */
export async function importMasterKey(text: string, where: string): Promise<CryptoKey> {
  const trimmed = text.trim();
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(trimmed);
  } catch {
    throw new AetherError(
      "invalid_flag",
      `${where}: not base64 (expected ${MASTER_KEY_BYTES} bytes in base64)`,
    );
  }
  if (bytes.length !== MASTER_KEY_BYTES) {
    throw new AetherError(
      "invalid_flag",
      `${where}: holds ${bytes.length} bytes, expected ${MASTER_KEY_BYTES} (create one with aether cluster init)`,
    );
  }
  return await crypto.subtle.importKey("raw", bytes as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

/** Reads and imports `--secrets-key-file`. */
export async function readMasterKeyFile(path: string): Promise<CryptoKey> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new AetherError("invalid_flag", `--secrets-key-file ${path}: ${(e as Error).message}`);
  }
  return await importMasterKey(text, `--secrets-key-file ${path}`);
}

function aad(name: string, version: number): Uint8Array<ArrayBuffer> {
  return utf8.encode(`aether-secret\0${name}\0${version}`) as Uint8Array<ArrayBuffer>;
}

export async function encryptSecret(key: CryptoKey, name: string, version: number, value: string) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad(name, version) },
    key,
    utf8.encode(value) as Uint8Array<ArrayBuffer>,
  );
  return { iv: toBase64(iv), ciphertext: toBase64(new Uint8Array(sealed)) };
}

export async function decryptSecret(
  key: CryptoKey,
  name: string,
  version: number,
  sealed: { iv: string; ciphertext: string },
): Promise<string> {
  try {
    const plain = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: fromBase64(sealed.iv) as Uint8Array<ArrayBuffer>,
        additionalData: aad(name, version),
      },
      key,
      fromBase64(sealed.ciphertext) as Uint8Array<ArrayBuffer>,
    );
    return utf8Strict.decode(plain);
  } catch {
    throw new AetherError(
      "internal",
      `secret "${name}" version ${version} does not decrypt with this node's master key ` +
        `(--secrets-key-file differs between nodes, or the record was tampered with)`,
    );
  }
}

/** One audited read of a secret by a slice. */
export interface SecretReadAudit {
  secret: string;
  /** The reading instance's coordinates. */
  slice: string;
  instanceId: string;
  requestId: string;
  allowed: boolean;
  version?: number;
}

export interface SecretInfo {
  name: string;
  current: number;
  versions: Array<{ version: number; createdAt: number }>;
  updatedAt: number;
}

export interface SecretsOptions {
  kv: KvAccess;
  state(): KvState;
  /** The master key; without one every operation answers 503 naming the flag. */
  key?: CryptoKey;
  /** Where reads by slices are recorded (the management API's audit log). */
  audit(entry: SecretReadAudit): void;
}

export class SecretsService {
  readonly #options: SecretsOptions;
  readonly stats = { reads: 0, refused: 0, writes: 0 };

  constructor(options: SecretsOptions) {
    this.#options = options;
  }

  get enabled(): boolean {
    return this.#options.key !== undefined;
  }

  #key(): CryptoKey {
    if (!this.#options.key) {
      throw new AetherError(
        "unavailable",
        "secrets are not enabled on this node: start it with --secrets-key-file (aether cluster init writes one)",
      );
    }
    return this.#options.key;
  }

  #record(name: string): { record: SecretRecord; modRevision: number } | undefined {
    const entry = this.#options.state().get(secretKeys.secret(name));
    if (!entry) return undefined;
    return { record: decodeSecretRecord(entry.value, `secret "${name}"`), modRevision: entry.modRevision };
  }

  list(): SecretInfo[] {
    return this.#options.state().range(SECRETS_PREFIX, MAX_SECRETS).flatMap((entry) => {
      const name = entry.key.slice(SECRETS_PREFIX.length);
      try {
        return [infoOf(name, decodeSecretRecord(entry.value, entry.key))];
      } catch {
        return [];
      }
    });
  }

  info(name: string): SecretInfo | undefined {
    const found = this.#record(secretNameText(name, "secret"));
    return found && infoOf(name, found.record);
  }

  /**
   * Stores a new version (the first when the secret is new). `mustExist` is rotate: the secret must exist.
   * Older versions beyond MAX_SECRET_VERSIONS are dropped.
   */
  async put(name: string, value: string, mustExist: boolean): Promise<SecretInfo> {
    secretNameText(name, "secret");
    if (typeof value !== "string" || value.length === 0) {
      throw new AetherError("bad_request", `secret "${name}": the value must be a non-empty string`, {
        field: "value",
      });
    }
    const bytes = utf8.encode(value).byteLength;
    if (bytes > MAX_SECRET_BYTES) {
      throw new AetherError(
        "too_large",
        `secret "${name}": the value is ${bytes} bytes, over ${MAX_SECRET_BYTES}`,
        {
          field: "value",
        },
      );
    }
    const key = this.#key();
    const found = this.#record(name);
    if (!found && mustExist) {
      throw new AetherError(
        "not_found",
        `no secret "${name}" to rotate (aether secret set ${name} creates it)`,
      );
    }
    if (!found && this.#options.state().range(SECRETS_PREFIX, MAX_SECRETS).length >= MAX_SECRETS) {
      throw new AetherError("overloaded", `the cluster holds ${MAX_SECRETS} secrets already (MAX_SECRETS)`);
    }
    const version = (found?.record.current ?? 0) + 1;
    const now = Date.now();
    const sealed = await encryptSecret(key, name, version, value);
    const versions = [...(found?.record.versions ?? []), { version, ...sealed, createdAt: now }]
      .slice(-MAX_SECRET_VERSIONS);
    const record: SecretRecord = { current: version, versions, updatedAt: now };
    // Compare-and-set on the record's revision: two concurrent rotations cannot both claim one version.
    await this.#options.kv.write({
      type: "put",
      key: secretKeys.secret(name),
      value: encodeSecretRecord(record),
      ifRevision: found?.modRevision ?? 0,
    });
    this.stats.writes++;
    return infoOf(name, record);
  }

  async delete(name: string): Promise<boolean> {
    const key = secretKeys.secret(secretNameText(name, "secret"));
    if (!this.#options.state().get(key)) return false;
    await this.#options.kv.write({ type: "delete", key });
    return true;
  }

  /**
   * A slice's read: allowed only when the manifest of `slice` (the caller's coordinates, named by its host)
   * declares `name`. Audited either way.
   */
  async read(
    name: string,
    caller: { slice: string; instanceId: string; requestId: string },
  ): Promise<string> {
    const audit = (allowed: boolean, version?: number) =>
      this.#options.audit({ secret: String(name).slice(0, 64), ...caller, allowed, version });
    if (typeof name !== "string" || !declaredSecrets(this.#options.state(), caller.slice).includes(name)) {
      this.stats.refused++;
      audit(false);
      throw new AetherError(
        "forbidden",
        `secret ${JSON.stringify(String(name).slice(0, 64))} is not declared by ${caller.slice} ` +
          `(add it to the slice's secrets: [...] and publish a new version)`,
      );
    }
    const found = this.#record(name);
    if (!found) {
      audit(false);
      throw new AetherError("not_found", `no secret "${name}" (aether secret set ${name} creates it)`);
    }
    const current = found.record.versions.find((v) => v.version === found.record.current)!;
    const value = await decryptSecret(this.#key(), name, current.version, current);
    this.stats.reads++;
    audit(true, current.version);
    return value;
  }

  /**
   * The runtime's own read (an operator named the secret in a setting, e.g. a database's PostgreSQL
   * password): no manifest check, audited as `slice` = `purpose` (e.g. "aether.runtime:db org.example/orders").
   */
  async readForRuntime(name: string, purpose: string): Promise<string> {
    const found = this.#record(secretNameText(name, "secret"));
    const audit = (allowed: boolean, version?: number) =>
      this.#options.audit({ secret: name, slice: purpose, instanceId: "", requestId: "", allowed, version });
    if (!found) {
      audit(false);
      throw new AetherError("not_found", `no secret "${name}" (aether secret set ${name} creates it)`);
    }
    const current = found.record.versions.find((v) => v.version === found.record.current)!;
    const value = await decryptSecret(this.#key(), name, current.version, current);
    this.stats.reads++;
    audit(true, current.version);
    return value;
  }
}

function infoOf(name: string, record: SecretRecord): SecretInfo {
  return {
    name,
    current: record.current,
    versions: record.versions.map((v) => ({ version: v.version, createdAt: v.createdAt })),
    updatedAt: record.updatedAt,
  };
}

/** The secrets a published artifact's manifest declares (none when unknown). */
export function declaredSecrets(state: KvState, coordinates: string): string[] {
  try {
    const entry = state.get(kvKeys.artifact(coordinates));
    if (!entry) return [];
    const manifest = decodeValue("artifact", entry.value).manifest as { secrets?: unknown };
    return Array.isArray(manifest.secrets) ? manifest.secrets.filter((s) => typeof s === "string") : [];
  } catch {
    return [];
  }
}
