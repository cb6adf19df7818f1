// The outbound HTTP and aspect series of a node's sample: through the mesh encoding and back, refused when
// malformed (naming the field), and in the Prometheus text.

import { deepEqual, equal, match, throws } from "node:assert/strict";
import { emptyHistogram } from "../core/mod.ts";
import { decodeMessage, encodeUpdate } from "./_wire.ts";
import { prometheusText } from "./prometheus.ts";
import type { NodeMetrics } from "./types.ts";

function sample(): NodeMetrics {
  const latency = emptyHistogram();
  latency.counts[3] = 2;
  latency.count = 2;
  latency.sumMs = 7;
  return {
    node: "n1",
    atMs: 1_000,
    seq: 1,
    startedAtMs: 1,
    process: {
      cpuShare: 0,
      cpuSecondsTotal: 0,
      rssBytes: 0,
      heapUsedBytes: 0,
      heapTotalBytes: 0,
      eventLoopLagMs: 0,
    },
    instances: [],
    methods: [],
    routes: [],
    consensus: {
      phases: 0,
      batches: 0,
      commands: 0,
      commitLatency: emptyHistogram(),
      forwardedWrites: 0,
      servedForwardedWrites: 0,
      pendingBatches: 0,
    },
    mesh: [],
    outbound: [{
      group: "org.a",
      host: "127.0.0.1:9000",
      requests: 9,
      failures: 5,
      retries: 1,
      rejected: 2,
      circuit: "open",
      latency,
    }],
    aspects: [{
      slice: "org.a:orders",
      method: "place",
      calls: 3,
      errors: 1,
      argumentBytes: 300,
      resultBytes: 30,
      maxArgumentBytes: 120,
      maxResultBytes: 10,
    }],
  };
}

Deno.test("outbound and aspect series survive the mesh encoding; bad ones are refused by field", () => {
  const s = sample();
  const back = decodeMessage(JSON.parse(JSON.stringify(encodeUpdate(s, true))));
  equal(back.t, "u");
  if (back.t !== "u") return;
  deepEqual(back.sample.outbound, s.outbound);
  deepEqual(back.sample.aspects, s.aspects);
  const bad = JSON.parse(JSON.stringify(encodeUpdate(s, true)));
  bad.s.o[0][6] = "ajar";
  throws(() => decodeMessage(bad), /\.o\[0\]\[6\]: expected closed, open or half-open/);
});

Deno.test("outbound and aspect families in the Prometheus text", () => {
  const text = prometheusText([sample()]);
  match(text, /aether_outbound_circuit_state\{node="n1",group="org\.a",host="127\.0\.0\.1:9000"\} 2/);
  match(text, /aether_outbound_requests_total\{[^}]*\} 9/);
  match(text, /aether_outbound_request_duration_seconds_count\{[^}]*\} 2/);
  match(text, /aether_aspect_argument_bytes_total\{node="n1",slice="org\.a:orders",method="place"\} 300/);
  match(text, /aether_aspect_result_bytes_max\{[^}]*\} 10/);
});
