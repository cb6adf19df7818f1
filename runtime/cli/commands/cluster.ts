import { CliError } from "../client.ts";
import { parseFor } from "../_args.ts";
import { formatDuration, table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { initClusterCerts } from "../cluster_certs.ts";

interface Member {
  id: string;
  connected: boolean;
  /** The node's placement labels (`--labels`), from /api/v1/nodes. */
  labels?: Record<string, string>;
}

export const clusterCommands: CliCommand[] = [
  {
    name: "status",
    args: "",
    summary: "the cluster as a node sees it: leader, members, revision",
    description: "This node's view of the cluster: leader, members and whether it reaches them, each " +
      "member's labels (--labels, for placement rules), revision, uptime.",
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
      const nodes = await ctx.api.json<{ items: { id: string; labels: Record<string, string> }[] }>(
        "GET",
        "/api/v1/nodes",
      );
      const labelsOf = new Map(nodes.items.map((n) => [n.id, n.labels]));
      for (const m of s.members) m.labels = labelsOf.get(m.id) ?? {};
      if (ctx.json) return ctx.out(JSON.stringify(s, null, 2));
      ctx.out(`node      ${s.nodeId}`);
      ctx.out(`leader    ${s.leader ? `${s.leader.nodeId} (view ${s.leader.view})` : "none"}`);
      ctx.out(`ready     ${s.ready}   quorum ${s.quorum}`);
      ctx.out(`revision  ${s.revision}   phase ${s.phase}   uptime ${formatDuration(s.uptimeSeconds)}`);
      ctx.out("");
      ctx.out(table(
        ["MEMBER", "CONNECTED", "ROLE", "LABELS"],
        s.members.map((m) => [
          m.id,
          m.connected,
          [m.id === s.nodeId ? "self" : "", m.id === s.leader?.nodeId ? "leader" : ""].filter(Boolean).join(
            ",",
          ) || "-",
          Object.entries(m.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(",") || "-",
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
  {
    name: "cluster init",
    args: "",
    summary: "create a cluster CA and a TLS certificate + key per node (needs openssl)",
    description:
      "Creates DIR/ca.crt and DIR/ca.key (the cluster CA) and DIR/<id>.crt, DIR/<id>.key for every " +
      "node, each valid for its id, localhost, 127.0.0.1, ::1 and --hosts. Keys are written with mode 0600. " +
      "When DIR already holds ca.key, that CA is kept and only the listed nodes' certificates are (re)issued: " +
      "that is how certificates are rotated and members added. Start each node with --tls-cert DIR/<id>.crt " +
      "--tls-key DIR/<id>.key --tls-ca DIR/ca.crt, and give the CLI --ca DIR/ca.crt (or AETHER_CA). It also " +
      "writes DIR/secrets.key (kept when present): the master key that encrypts secrets, for every node's " +
      "--secrets-key-file.",
    flags: [
      { name: "out", value: "DIR", description: "directory for the files (created when missing)" },
      { name: "nodes", value: "ID,...", description: "the node ids, e.g. n1,n2,n3" },
      { name: "hosts", value: "HOST,...", description: "extra host names or IP addresses for every node" },
      {
        name: "days",
        value: "N",
        description: "validity of node certificates (default 825)",
        int: { min: 1, max: 3650 },
      },
    ],
    positionals: { min: 0, max: 0 },
    examples: ["aether cluster init --out certs --nodes n1,n2,n3 --hosts node1.example,10.0.0.5"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const list = (text: string | undefined) => (text ?? "").split(",").map((s) => s.trim()).filter(Boolean);
      const out = parsed.string("out") ?? "";
      const result = await initClusterCerts({
        out,
        nodes: list(parsed.string("nodes")),
        hosts: list(parsed.string("hosts")),
        days: parsed.int("days") ?? 825,
      });
      const secretsKey = await writeSecretsKey(out);
      if (secretsKey.created) result.files.push(secretsKey.file);
      if (ctx.json) return ctx.out(JSON.stringify({ ...result, secretsKeyFile: secretsKey.file }, null, 2));
      ctx.out(result.createdCa ? `created the cluster CA in ${out}` : `kept the cluster CA in ${out}`);
      for (const file of result.files) ctx.out(`  ${file}`);
      ctx.out(
        `${secretsKey.created ? "created" : "kept"} the secrets master key ${secretsKey.file} ` +
          `(give every node --secrets-key-file ${secretsKey.file})`,
      );
    },
  },
];

/** DIR/secrets.key: the secrets' master key (32 random bytes, base64, mode 0600); an existing one is kept. */
async function writeSecretsKey(dir: string): Promise<{ file: string; created: boolean }> {
  const file = `${dir}/secrets.key`;
  try {
    await Deno.stat(file);
    return { file, created: false };
  } catch {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    await Deno.writeTextFile(file, `${btoa(String.fromCharCode(...bytes))}\n`, {
      mode: 0o600,
      createNew: true,
    });
    return { file, created: true };
  }
}
