import { Hono } from "hono";
import type { ApiDeps } from "./deps.ts";

/** Health and status of this node and its view of the cluster. */
export function clusterRoutes(deps: ApiDeps): Hono {
  const app = new Hono();

  app.get("/health", (c) => {
    const s = deps.status();
    const healthy = s.ready && s.quorum;
    return c.json({
      status: healthy ? "healthy" : "unhealthy",
      ready: s.ready,
      quorum: s.quorum,
      nodeId: s.nodeId,
      leader: s.leader?.nodeId ?? null,
      members: s.members,
    }, healthy ? 200 : 503);
  });

  // Readiness: caught up and in a quorum (what a load balancer or orchestrator waits for).
  app.get("/ready", (c) => {
    const s = deps.status();
    const ready = s.ready && s.quorum;
    return c.json({ ready, nodeId: s.nodeId }, ready ? 200 : 503);
  });

  app.get("/status", (c) => {
    const s = deps.status();
    return c.json({
      nodeId: s.nodeId,
      leader: s.leader,
      isLeader: s.leader?.nodeId === s.nodeId,
      ready: s.ready,
      quorum: s.quorum,
      members: s.members,
      revision: s.revision,
      phase: s.phase,
      consensus: s.consensus,
      writeForwarding: s.writeForwarding,
      elections: s.elections,
      limits: s.limits,
      uptimeSeconds: Math.round(s.uptimeMs / 100) / 10,
      ports: s.ports,
      ...s.features,
    });
  });

  return app;
}
