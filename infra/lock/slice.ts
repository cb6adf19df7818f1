/**
 * The lock service (`ctx.infra.lock(name)`): leases with fencing tokens kept in the consensus KV as
 * `locks/{group}/{name}`; the leader expires them (runtime/infra-host/lock_service.ts, a node duty).
 */

import { defineSlice } from "@aether/slices";
import { forward } from "../_service.ts";

export default defineSlice({
  coordinates: "aether.infra:lock:1.0.0",
  methods: {
    acquire: forward("lock", "acquire", { name: "lock" }),
    renew: forward("lock", "renew", { name: "lock" }),
    release: forward("lock", "release", { name: "lock" }),
    holder: forward("lock", "holder", { name: "lock" }),
  },
});
