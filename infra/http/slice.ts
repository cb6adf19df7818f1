/**
 * The outbound HTTP service (`ctx.infra.http.request(...)`): requests to hosts the calling slice's manifest
 * declares (`outbound`) and the operator allows (`--outbound-allow`, `outbound.allow`), with timeouts, retries
 * and circuit breakers. The node-side engine (runtime/infra-host/http_client.ts) holds the sockets, the
 * breakers and the in-flight limits of its node, and reads the caller's declared hosts from the caller's
 * published manifest (the caller comes from the runtime, never from the request).
 *
 * A request whose method is not idempotent (POST, PATCH) is never sent twice: the node calls this slice with
 * retries of unknown outcomes off for it (runtime/infra-host/service_routing.ts).
 */

import { defineSlice } from "@aether/slices";
import { forward } from "../_service.ts";

export default defineSlice({
  coordinates: "aether.infra:http:1.0.0",
  methods: {
    request: forward("http", "request", {}),
  },
});
