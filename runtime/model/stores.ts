/**
 * The partition-map family of the infrastructure store (runtime/infra-host): which nodes own which partitions
 * of each named store. Only metadata goes through consensus; the data lives on the owning nodes.
 *
 * | key                            | record            | written by                                   |
 * | ------------------------------ | ----------------- | -------------------------------------------- |
 * | `stores/{name}/config`         | StoreConfigRecord | whoever opens the store first (create-only)  |
 * | `stores/{name}/map`            | PartitionMapRecord| the leader only                              |
 * | `stores/{name}/synced/{node}`  | SyncReportRecord  | that node: partitions it finished streaming  |
 */

import { AetherError, type NodeId } from "../core/mod.ts";
import { nodeId } from "./_fields.ts";
import { nodeText } from "./_names.ts";
import {
  array,
  type Check,
  FieldError,
  integer,
  join,
  literal,
  object,
  record,
  refine,
  string,
  timestamp,
  validate,
} from "./_validate.ts";

export const STORES_PREFIX = "stores/";

/** Store names: 1–64 characters of [a-z0-9._-], starting with a letter or digit. */
export const STORE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export const STORE_ENGINES = ["sqlite", "memory"] as const;
export type StoreEngineName = typeof STORE_ENGINES[number];

/** The most replicas a store may ask for. */
export const MAX_STORE_REPLICAS = 7;

export interface StoreConfigRecord {
  replicas: number;
  writeQuorum: number;
  engine: StoreEngineName;
  partitions: number;
  createdAt: number;
}

/** One partition being moved: the owners it will have (primary first) and the map epoch the move began at. */
export interface PartitionMove {
  next: number[];
  since: number;
}

/**
 * The partition map of one store. `nodes` is a table of node ids; `owners[p]` lists indexes into it, primary
 * first. `moving[p]` (keys are partition numbers) names the owners partition p moves to once every new one
 * reported it synced; until then writes go to both sets.
 */
export interface PartitionMapRecord {
  epoch: number;
  nodes: NodeId[];
  owners: number[][];
  moving: Record<string, PartitionMove>;
  updatedAt: number;
}

/** The partitions a node finished streaming (of those it is being added to), as of map `epoch`. */
export interface SyncReportRecord {
  epoch: number;
  partitions: number[];
}

export const storeKeys = {
  config: (name: string): string => `${STORES_PREFIX}${storeNameText(name, "store key")}/config`,
  map: (name: string): string => `${STORES_PREFIX}${storeNameText(name, "store key")}/map`,
  synced: (name: string, node: NodeId): string =>
    `${STORES_PREFIX}${storeNameText(name, "store key")}/synced/${nodeText(node, "store key")}`,
  syncedPrefix: (name: string): string => `${STORES_PREFIX}${storeNameText(name, "store prefix")}/synced/`,
} as const;

export type StoreKey =
  | { kind: "config"; store: string }
  | { kind: "map"; store: string }
  | { kind: "synced"; store: string; node: NodeId };

/** Parses a key under `stores/`; undefined for any other key or shape. */
export function parseStoreKey(key: string): StoreKey | undefined {
  if (!key.startsWith(STORES_PREFIX)) return undefined;
  const parts = key.slice(STORES_PREFIX.length).split("/");
  if (!STORE_NAME.test(parts[0] ?? "")) return undefined;
  if (parts.length === 2 && parts[1] === "config") return { kind: "config", store: parts[0] };
  if (parts.length === 2 && parts[1] === "map") return { kind: "map", store: parts[0] };
  if (parts.length === 3 && parts[1] === "synced") return { kind: "synced", store: parts[0], node: parts[2] };
  return undefined;
}

export function storeNameText(name: string, where: string): string {
  if (typeof name !== "string" || !STORE_NAME.test(name)) {
    throw new AetherError(
      "bad_request",
      `${where}: store name ${JSON.stringify(name)} must be 1-64 characters of [a-z0-9._-] starting with a ` +
        `letter or digit`,
      { field: "name" },
    );
  }
  return name;
}

const partitionCount = integer(1, 65_536);

export const storeConfigCheck: Check<StoreConfigRecord> = refine(
  object({
    replicas: integer(1, MAX_STORE_REPLICAS),
    writeQuorum: integer(1, MAX_STORE_REPLICAS),
    engine: literal(STORE_ENGINES),
    partitions: partitionCount,
    createdAt: timestamp(),
  }),
  (value, path) => {
    if (value.writeQuorum > value.replicas) {
      const at = join(path, "writeQuorum");
      throw new FieldError(at, `${at} (${value.writeQuorum}) must not exceed replicas (${value.replicas})`);
    }
  },
);

const ownerList = array(integer(0, 1_000), { max: MAX_STORE_REPLICAS * 2, unique: true });

export const partitionMapCheck: Check<PartitionMapRecord> = refine(
  object({
    epoch: integer(1),
    nodes: array(nodeId, { min: 0, max: 1_000, unique: true }),
    owners: array(ownerList, { min: 1, max: 65_536 }),
    moving: record(
      string({ pattern: /^(0|[1-9][0-9]{0,4})$/, expectation: "a partition number" }),
      object({ next: ownerList, since: integer(1) }),
    ),
    updatedAt: timestamp(),
  }),
  (value, path) => {
    const checkIndexes = (list: number[], at: string) => {
      for (const i of list) {
        if (i >= value.nodes.length) throw new FieldError(at, `${at} names node index ${i} beyond nodes`);
      }
    };
    value.owners.forEach((list, p) => checkIndexes(list, `${join(path, "owners")}[${p}]`));
    for (const [p, move] of Object.entries(value.moving)) {
      const at = join(path, `moving.${p}`);
      if (Number(p) >= value.owners.length) throw new FieldError(at, `${at} is beyond the partition count`);
      checkIndexes(move.next, at);
      if (move.since > value.epoch) throw new FieldError(at, `${at}.since is after the map's epoch`);
    }
  },
);

export const syncReportCheck: Check<SyncReportRecord> = object({
  epoch: integer(1),
  partitions: array(integer(0, 65_535), { max: 65_536, unique: true }),
});

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function decodeJson(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(utf8Strict.decode(bytes));
  } catch (e) {
    throw new AetherError("bad_request", `${where}: not UTF-8 JSON (${(e as Error).message})`);
  }
}

export const storeCodec = {
  encodeConfig: (r: StoreConfigRecord): Uint8Array =>
    utf8.encode(JSON.stringify(validate(storeConfigCheck, r, "store config"))),
  decodeConfig: (bytes: Uint8Array, where = "store config"): StoreConfigRecord =>
    validate(storeConfigCheck, decodeJson(bytes, where), where),
  encodeMap: (r: PartitionMapRecord): Uint8Array =>
    utf8.encode(JSON.stringify(validate(partitionMapCheck, r, "partition map"))),
  decodeMap: (bytes: Uint8Array, where = "partition map"): PartitionMapRecord =>
    validate(partitionMapCheck, decodeJson(bytes, where), where),
  encodeSync: (r: SyncReportRecord): Uint8Array =>
    utf8.encode(JSON.stringify(validate(syncReportCheck, r, "sync report"))),
  decodeSync: (bytes: Uint8Array, where = "sync report"): SyncReportRecord =>
    validate(syncReportCheck, decodeJson(bytes, where), where),
} as const;
