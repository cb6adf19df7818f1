import { CliError } from "../client.ts";
import { parseFor } from "../_args.ts";
import { formatDuration, table } from "../_format.ts";
import type { CliCommand } from "../command.ts";

interface Member {
  id: string;
  connected: boolean;
}

export const clusterCommands: CliCommand[] = [
  {
    name: "status",
    args: "",
    summary: "the cluster as a node sees it: leader, members, revision",
    description: "This node's view of the cluster: leader, members and whether it reaches them, revision, " +
      "uptime.",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const s = await ctx.api.json<{
        nodeId: string;
        leader: { nodeId: string; view: number } | null;
        ready: boolean;
        quorum: boolean;
        members: Member[];
        revision: number;
        phase: number;
        uptimeSeconds: number;
      }>("GET", "/api/v1/status");
      if (ctx.json) return ctx.out(JSON.stringify(s, null, 2));
      ctx.out(`node      ${s.nodeId}`);
      ctx.out(`leader    ${s.leader ? `${s.leader.nodeId} (view ${s.leader.view})` : "none"}`);
      ctx.out(`ready     ${s.ready}   quorum ${s.quorum}`);
      ctx.out(`revision  ${s.revision}   phase ${s.phase}   uptime ${formatDuration(s.uptimeSeconds)}`);
      ctx.out("");
      ctx.out(table(
        ["MEMBER", "CONNECTED", "ROLE"],
        s.members.map((m) => [
          m.id,
          m.connected,
          [m.id === s.nodeId ? "self" : "", m.id === s.leader?.nodeId ? "leader" : ""].filter(Boolean).join(
            ",",
          ),
        ]),
      ));
    },
  },
  {
    name: "health",
    args: "",
    summary: "healthy when the node is ready and has quorum (else exit 1)",
    description: "Healthy when this node is ready and has quorum; exit code 1 otherwise.",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      // 503 is a valid answer here: read the body either way.
      const response = await ctx.api.fetch("/api/v1/health");
      const h = await response.json();
      if (ctx.json) ctx.out(JSON.stringify(h, null, 2));
      else {
        ctx.out(
          `${h.status}  node ${h.nodeId}  ready ${h.ready}  quorum ${h.quorum}  leader ${h.leader ?? "none"}`,
        );
        ctx.out(h.members.map((m: Member) => `${m.id}:${m.connected ? "up" : "down"}`).join("  "));
      }
      if (h.status !== "healthy") throw new CliError("node is unhealthy");
    },
  },
];
