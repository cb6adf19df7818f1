/**
 * The node feature "traces": this node's span ring (every span the HTTP router and the invoker record), the
 * answer to other members' trace queries over the mesh, GET /api/v1/traces/{requestId} for the whole
 * cluster, and with --otlp-endpoint the export of every span as OTLP/HTTP JSON. With --traces off nothing is
 * recorded (the router and invoker get no sink) and the endpoint answers from the other members only.
 */

import type { Hono } from "hono";
import { traceRoutes } from "../api/mod.ts";
import type { SpanSink } from "../invoke/mod.ts";
import { ClusterTraces, OtlpExporter, SpanRing, teeSpans } from "../metrics/mod.ts";
import type { Feature, NodeContext } from "./context.ts";
import type { NodeFlags } from "./flags.ts";

export interface TracesFeature extends Feature {
  readonly name: "traces";
  readonly api: Hono;
  /** Where the router and the invoker record spans; undefined with --traces off. */
  readonly spans: SpanSink | undefined;
}

export function startTraces(
  core: Pick<NodeContext, "self" | "members" | "mesh" | "log">,
  flags: Pick<NodeFlags, "traces" | "otlpEndpoint" | "traceRingSpans">,
): TracesFeature {
  const log = core.log.with({ component: "traces" });
  const ring = new SpanRing(flags.traceRingSpans);
  const exporter = flags.otlpEndpoint === undefined
    ? undefined
    : new OtlpExporter({ url: flags.otlpEndpoint, node: core.self, log });
  const cluster = new ClusterTraces({ self: core.self, members: core.members, mesh: core.mesh, ring, log });
  const spans = !flags.traces ? undefined : exporter ? teeSpans(ring, exporter) : ring;
  return {
    name: "traces",
    api: traceRoutes(cluster, ring.capacity),
    spans,
    status: () => ({
      recording: flags.traces,
      ring: ring.stats,
      ...(exporter ? { otlp: exporter.stats } : {}),
    }),
    async stop() {
      cluster.stop();
      await exporter?.stop();
    },
  };
}
