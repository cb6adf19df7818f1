/**
 * The replicated settings the invoker reads on every call, cached from the KV state and kept current by the
 * applied batches (like the EndpointRegistry):
 *
 * - `routing/{group}:{artifact}` → version weights (RoutingRecord);
 * - `config/invoke/timeoutMs/{group}:{artifact}` → the slice's call timeout in ms (ConfigRecord with a
 *   positive integer value): calls to the slice that name no deadline get it, and it caps the deadline of
 *   those that do.
 *
 * Records that do not validate are ignored (and reported through `problems`), never half-used.
 */

import type { KvEntry, KvEvent } from "../kv/mod.ts";
import { decodeValue, KEY_PREFIXES, kvKeys, type RoutingRecord } from "../model/mod.ts";
import { MAX_CALL_TIMEOUT_MS } from "./invoker.ts";

export const TIMEOUT_CONFIG_PREFIX = `${KEY_PREFIXES.config}invoke/timeoutMs/`;

/** The KV key of a slice's call timeout (`group:artifact`). */
export function timeoutKey(slice: string): string {
  return kvKeys.config(`invoke/timeoutMs/${slice}`);
}

export interface SettingsReader {
  readonly revision: number;
  range(prefix: string): KvEntry[];
}

export class InvokeSettings {
  readonly #routing = new Map<string, RoutingRecord>();
  readonly #timeouts = new Map<string, number>();
  readonly #problems = new Map<string, string>();
  #revision = 0;

  static fromKv(kv: SettingsReader): InvokeSettings {
    const settings = new InvokeSettings();
    settings.reset(kv);
    return settings;
  }

  get revision(): number {
    return this.#revision;
  }

  routing(slice: string): RoutingRecord | undefined {
    return this.#routing.get(slice);
  }

  timeoutMs(slice: string): number | undefined {
    return this.#timeouts.get(slice);
  }

  /** Every slice with version weights. */
  allRouting(): Array<{ slice: string; record: RoutingRecord }> {
    return [...this.#routing].map(([slice, record]) => ({ slice, record })).sort((a, b) =>
      a.slice < b.slice ? -1 : 1
    );
  }

  allTimeouts(): Array<{ slice: string; timeoutMs: number }> {
    return [...this.#timeouts].map(([slice, timeoutMs]) => ({ slice, timeoutMs })).sort((a, b) =>
      a.slice < b.slice ? -1 : 1
    );
  }

  /** Records that were ignored, by key, with the reason. */
  problems(): Record<string, string> {
    return Object.fromEntries(this.#problems);
  }

  reset(kv: SettingsReader): void {
    this.#routing.clear();
    this.#timeouts.clear();
    this.#problems.clear();
    for (const e of kv.range(KEY_PREFIXES.routing)) this.#put(e.key, e.value);
    for (const e of kv.range(TIMEOUT_CONFIG_PREFIX)) this.#put(e.key, e.value);
    this.#revision = kv.revision;
  }

  /** Applies a batch's events; returns whether a setting changed. */
  apply(events: readonly KvEvent[]): boolean {
    let changed = false;
    for (const event of events) {
      if (event.revision <= this.#revision) continue;
      if (!event.key.startsWith(KEY_PREFIXES.routing) && !event.key.startsWith(TIMEOUT_CONFIG_PREFIX)) {
        continue;
      }
      changed = true;
      if (event.type === "put" && event.value) this.#put(event.key, event.value);
      else this.#remove(event.key);
    }
    const last = events[events.length - 1];
    if (last && last.revision > this.#revision) this.#revision = last.revision;
    return changed;
  }

  #put(key: string, value: Uint8Array): void {
    this.#remove(key);
    try {
      if (key.startsWith(KEY_PREFIXES.routing)) {
        this.#routing.set(key.slice(KEY_PREFIXES.routing.length), decodeValue("routing", value, key));
      } else {
        const slice = key.slice(TIMEOUT_CONFIG_PREFIX.length);
        const ms = decodeValue("config", value, key).value;
        if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 1 || ms > MAX_CALL_TIMEOUT_MS) {
          throw new Error(
            `${key}: value ${JSON.stringify(ms)} is not a timeout from 1 to ${MAX_CALL_TIMEOUT_MS} ms`,
          );
        }
        this.#timeouts.set(slice, ms);
      }
    } catch (e) {
      this.#problems.set(key, (e as Error).message);
    }
  }

  #remove(key: string): void {
    this.#problems.delete(key);
    if (key.startsWith(KEY_PREFIXES.routing)) this.#routing.delete(key.slice(KEY_PREFIXES.routing.length));
    else this.#timeouts.delete(key.slice(TIMEOUT_CONFIG_PREFIX.length));
  }
}
