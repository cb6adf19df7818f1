/**
 * GET /outbound (mounted under /api/v1): the outbound HTTP client's view of the cluster: the hosts this
 * node's
 * operator allows (`--outbound-allow`) and, per node, each (group, host:port) the slices called with its
 * counters and circuit state: from the cluster metrics snapshot (about a second old), this node's own entry
 * read live.
 */

import { Hono } from "hono";
import type { HttpClient, OutboundHostStats } from "./http_client.ts";

export interface OutboundNodeView {
  node: string;
  stale: boolean;
  hosts: Array<Omit<OutboundHostStats, "consecutiveFailures" | "latency"> & { latency?: unknown }>;
}

export function outboundRoutes(
  self: string,
  client: HttpClient,
  clusterView: () => OutboundNodeView[],
): Hono {
  const app = new Hono();
  app.get("/outbound", (c) => {
    const nodes = clusterView().filter((n) => n.node !== self);
    nodes.push({ node: self, stale: false, hosts: client.stats() });
    nodes.sort((a, b) => a.node.localeCompare(b.node));
    return c.json({ allowed: client.allowedText(), nodes });
  });
  return app;
}
