/**
 * The state machine service (`ctx.infra.machine(name)`): instances of the machines the caller's group
 * declares, kept in the consensus KV by the node-side engine (runtime/infra-host/statemachine.ts): transitions
 * by compare-and-set, timeouts as scheduler jobs (fired by the nodes, not by this slice).
 *
 * `send` is never retried by the invoker after an unknown outcome (an event would be applied twice):
 * runtime/infra-host/service_routing.ts.
 */

import { defineSlice } from "@aether/slices";
import { forward } from "../_service.ts";

export default defineSlice({
  coordinates: "aether.infra:statemachine:1.0.0",
  methods: {
    send: forward("statemachine", "send", { name: "machine" }),
    get: forward("statemachine", "get", { name: "machine" }),
    delete: forward("statemachine", "delete", { name: "machine" }),
  },
});
