/**
 * The slice of tests/bench/pubsub_bench.ts: publishes through ctx.infra.topic and receives what it subscribed
 * to, keeping the end-to-end latency of each message (receipt minus the client's send time, one machine's
 * clock) in this instance's memory until `stats` hands it out.
 */
import { defineSlice, type DeliveredMessage } from "../../slices/mod.ts";

const instance = crypto.randomUUID();
let latencies: number[] = [];

export default defineSlice({
  coordinates: "org.example.bench:pubsub:1.0.0",
  requires: ["pubsub"],
  http: {
    prefix: "/bench",
    routes: {
      publish: "POST /publish",
      noop: "POST /noop",
      subscribe: "POST /subscribe",
      stats: "POST /stats",
    },
  },
  methods: {
    publish: (req: { topic: string; key: string; value: unknown }, ctx) =>
      ctx.infra.topic(req.topic).publish(req.value, { key: req.key }),
    noop: () => ({ ok: true }),
    subscribe: (req: { topic: string; group: string; partitions: number }, ctx) =>
      ctx.infra.topic(req.topic).create({ partitions: req.partitions }).then(() =>
        ctx.infra.topic(req.topic).subscribe({ group: req.group, method: "onMessage", from: "latest" })
      ),
    onMessage(msg: DeliveredMessage<{ sentAtMs: number }>) {
      if (latencies.length < 1_000_000) latencies.push(Date.now() - msg.value.sentAtMs);
      return { ok: true };
    },
    stats() {
      const out = { instance, latencies };
      latencies = [];
      return out;
    },
  },
});
