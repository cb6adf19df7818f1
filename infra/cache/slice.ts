/**
 * The cache service (`ctx.infra.cache(name)`): named caches of JSON values with TTLs, LRU bounds per node and
 * counters. Keys live in the partitioned replicated store `infra.cache` as `{group}/{cache}/{generation}/{key}`;
 * the node-side engine (runtime/infra-host/cache_service.ts) keeps the per-node LRU and counters.
 */

import { defineSlice } from "@aether/slices";
import { forward } from "../_service.ts";

export default defineSlice({
  coordinates: "aether.infra:cache:1.0.0",
  methods: {
    get: forward("cache", "get", { name: "cache", keys: ["key"] }),
    put: forward("cache", "put", { name: "cache", keys: ["key"] }),
    remove: forward("cache", "remove", { name: "cache", keys: ["key"] }),
    clear: forward("cache", "clear", { name: "cache" }),
    stats: forward("cache", "stats", { name: "cache" }),
    configure: forward("cache", "configure", { name: "cache" }),
  },
});
