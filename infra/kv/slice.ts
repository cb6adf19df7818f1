/**
 * The kv service (`ctx.infra.kv(name)`): durable maps of JSON values with versions (compare-and-set), an
 * atomic add and batches of these (not atomic). Entries live in the store `infra.kv` as `{group}/{map}/{key}`
 * (runtime/infra-host/kv_service.ts).
 */

import { defineSlice } from "@aether/slices";
import { forward } from "../_service.ts";

export default defineSlice({
  coordinates: "aether.infra:kv:1.0.0",
  methods: {
    get: forward("kv", "get", { name: "map", keys: ["key"] }),
    put: forward("kv", "put", { name: "map", keys: ["key"] }),
    delete: forward("kv", "delete", { name: "map", keys: ["key"] }),
    add: forward("kv", "add", { name: "map", keys: ["key"] }),
    // Keys of a batch's operations are checked by the engine, operation by operation (kv_service.ts).
    batch: forward("kv", "batch", { name: "map" }),
  },
});
