/**
 * The pub/sub service (`ctx.infra.topic(name)`): durable topics in partitions, consumer groups with offsets,
 * replay. The node-side engine (runtime/infra-host/pubsub_service.ts) keeps the topics in the consensus KV
 * and the records in the store; `subscribe` names the calling slice (from the runtime) as the subscriber.
 * Delivery to subscribers is driven by the nodes (the leader calls the subscribed slices through the invoker),
 * not by this slice.
 *
 * `publish` is never retried by the invoker after an unknown outcome (a message would be published twice):
 * runtime/infra-host/service_routing.ts.
 */

import { defineSlice } from "@aether/slices";
import { forward } from "../_service.ts";

export default defineSlice({
  coordinates: "aether.infra:pubsub:1.0.0",
  methods: {
    publish: forward("pubsub", "publish", { name: "topic" }),
    create: forward("pubsub", "create", { name: "topic" }),
    subscribe: forward("pubsub", "subscribe", { name: "topic" }),
    unsubscribe: forward("pubsub", "unsubscribe", { name: "topic" }),
    seek: forward("pubsub", "seek", { name: "topic" }),
    info: forward("pubsub", "info", { name: "topic" }),
  },
});
