/**
 * The records of every family as stored: each family's check, and the UTF-8 JSON codec that validates a record
 * on the way in and on the way out, by family or by key (where key and record must also agree).
 *
 * Records other than the leader's were designed from the issues and may be refined by whoever builds the
 * feature that writes them; keep the check and the type in step.
 */

import { AetherError, formatCoordinates } from "../core/mod.ts";
import { type Check, validate } from "./_validate.ts";
import { artifactCheck, type ArtifactRecord } from "./artifacts.ts";
import { blueprintCheck, type BlueprintRecord } from "./blueprints.ts";
import { configCheck, type ConfigRecord } from "./config.ts";
import { endpointCheck, type EndpointRecord } from "./endpoints.ts";
import { instanceCheck, type InstanceRecord } from "./instances.ts";
import { type AppKey, type ParsedKey, parseKey } from "./keys.ts";
import { leaderCheck, type LeaderRecord } from "./leader.ts";
import { cordonCheck, type CordonRecord, nodeLabelsCheck, type NodeLabelsRecord } from "./nodes.ts";
import { routeCheck, type RouteRecord } from "./routes.ts";
import { routingCheck, type RoutingRecord } from "./routing.ts";
import { rolloutCheck, type RolloutRecord } from "./rollouts.ts";
import { targetCheck, type TargetRecord } from "./targets.ts";
import { thresholdCheck, type ThresholdRecord } from "./thresholds.ts";

export interface RecordTypes {
  blueprint: BlueprintRecord;
  target: TargetRecord;
  instance: InstanceRecord;
  endpoint: EndpointRecord;
  route: RouteRecord;
  artifact: ArtifactRecord;
  routing: RoutingRecord;
  rollout: RolloutRecord;
  leader: LeaderRecord;
  config: ConfigRecord;
  threshold: ThresholdRecord;
  nodeLabels: NodeLabelsRecord;
  cordon: CordonRecord;
}

/** Every family whose values are JSON records (`app/` values are the operator's raw bytes). */
export type RecordFamily = keyof RecordTypes;

const CHECKS: { [F in RecordFamily]: Check<RecordTypes[F]> } = {
  blueprint: blueprintCheck,
  target: targetCheck,
  instance: instanceCheck,
  endpoint: endpointCheck,
  route: routeCheck,
  artifact: artifactCheck,
  routing: routingCheck,
  rollout: rolloutCheck,
  leader: leaderCheck,
  config: configCheck,
  threshold: thresholdCheck,
  nodeLabels: nodeLabelsCheck,
  cordon: cordonCheck,
};

export const RECORD_FAMILIES = Object.keys(CHECKS) as RecordFamily[];

/**
 * Checks a record of `family`; returns it rebuilt with its declared fields only, or throws
 * AetherError("bad_request") naming the wrong field (`extra.field`).
 */
export function validateRecord<F extends RecordFamily>(
  family: F,
  value: unknown,
  where = `${family} record`,
): RecordTypes[F] {
  const check = CHECKS[family] as Check<RecordTypes[F]> | undefined;
  if (!check) throw new AetherError("bad_request", `${where}: "${family}" is not a record family`);
  return validate(check, value, where);
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** Validates and encodes a record as UTF-8 JSON. */
export function encodeValue<F extends RecordFamily>(family: F, value: RecordTypes[F]): Uint8Array {
  return utf8.encode(JSON.stringify(validateRecord(family, value)));
}

/** Decodes and validates a record stored as UTF-8 JSON. */
export function decodeValue<F extends RecordFamily>(
  family: F,
  bytes: Uint8Array,
  where = `${family} record`,
): RecordTypes[F] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8Strict.decode(bytes));
  } catch (e) {
    throw new AetherError("bad_request", `${where}: not UTF-8 JSON (${e instanceof Error ? e.message : e})`);
  }
  return validateRecord(family, parsed, where);
}

/** A KV entry decoded by its key: the parsed key and its typed record (raw bytes under `app/`). */
export type DecodedEntry =
  | {
    [F in RecordFamily]: { family: F; key: Extract<ParsedKey, { family: F }>; value: RecordTypes[F] };
  }[RecordFamily]
  | { family: "app"; key: AppKey; value: Uint8Array };

/**
 * Decodes any schema entry by its key and checks that key and record agree (a blueprint's id, an artifact's
 * manifest coordinates).
 */
export function decodeEntry(key: string, bytes: Uint8Array): DecodedEntry {
  const parsed = parseKey(key);
  if (parsed.family === "app") return { family: "app", key: parsed, value: bytes };
  const where = `value of "${key}"`;
  const value = decodeValue(parsed.family, bytes, where);
  checkAgreement(parsed, value, where);
  return { family: parsed.family, key: parsed, value } as DecodedEntry;
}

/** Validates a record for `key` (family from the key, agreement of key and record) and encodes it. */
export function encodeEntry(key: string, value: unknown): Uint8Array {
  const parsed = parseKey(key);
  if (parsed.family === "app") {
    if (!(value instanceof Uint8Array)) {
      throw new AetherError("bad_request", `value of "${key}" must be bytes`);
    }
    return value;
  }
  const where = `value of "${key}"`;
  const checked = validateRecord(parsed.family, value, where);
  checkAgreement(parsed, checked, where);
  return utf8.encode(JSON.stringify(checked));
}

function checkAgreement(key: ParsedKey, value: unknown, where: string): void {
  if (key.family === "blueprint" && (value as BlueprintRecord).id !== key.id) {
    throw new AetherError(
      "bad_request",
      `${where}: id "${(value as BlueprintRecord).id}" differs from the key's "${key.id}"`,
      {
        field: "id",
      },
    );
  }
  if (key.family === "artifact") {
    const named = (value as ArtifactRecord).manifest.coordinates;
    if (named !== formatCoordinates(key.artifact)) {
      throw new AetherError(
        "bad_request",
        `${where}: manifest.coordinates "${named}" differs from the key's "${
          formatCoordinates(key.artifact)
        }"`,
        { field: "manifest.coordinates" },
      );
    }
  }
}
