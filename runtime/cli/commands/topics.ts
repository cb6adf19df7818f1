import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { CliError, EXIT_USAGE } from "../client.ts";

interface PartitionLag {
  partition: number;
  next: number;
  head: number;
  lag: number;
}

interface GroupView {
  consumerGroup: string;
  slice: string;
  method: string;
  maxAttempts: number;
  lag: number;
  partitions: PartitionLag[];
}

interface TopicView {
  group: string;
  topic: string;
  partitions: number;
  retentionMs: number;
  retentionBytes: number;
  messages: number;
  bytes: number;
  consumerGroups: GroupView[];
}

/** `group/topic` → the API path of the topic; a clear error otherwise. */
function topicPath(text: string): string {
  const slash = text.lastIndexOf("/");
  if (slash <= 0 || slash === text.length - 1) {
    throw new CliError(`topic "${text}" must be <group>/<topic>, e.g. org.example.shop/orders`, EXIT_USAGE);
  }
  return `/api/v1/topics/${encodeURIComponent(text.slice(0, slash))}/${
    encodeURIComponent(text.slice(slash + 1))
  }`;
}

function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

function lagRows(topic: TopicView): string {
  return table(
    ["GROUP", "PARTITION", "NEXT", "HEAD", "LAG"],
    topic.consumerGroups.flatMap((g) =>
      g.partitions.map((
        p,
      ) => [g.consumerGroup, String(p.partition), String(p.next), String(p.head), String(p.lag)])
    ),
  );
}

export const topicsCommands: CliCommand[] = [
  {
    name: "topics list",
    args: "",
    summary: "pub/sub topics: partitions, messages, bytes, consumer groups and their lag",
    flags: [{ name: "group", value: "GROUP", description: "only this slice group's topics" }],
    positionals: { min: 0, max: 0 },
    examples: ["aether topics list", "aether topics list --group org.example.shop"],
    async run(ctx, args) {
      const groupFlag = parseFor(this, args).string("group");
      const query = groupFlag === undefined ? "" : `?group=${encodeURIComponent(groupFlag)}`;
      const { items } = await ctx.api.json<{ items: TopicView[] }>("GET", `/api/v1/topics${query}`);
      if (ctx.json) return ctx.out(JSON.stringify(items));
      ctx.out(table(
        ["TOPIC", "PARTITIONS", "MESSAGES", "BYTES", "RETENTION", "GROUPS (LAG)"],
        items.map((t) => [
          `${t.group}/${t.topic}`,
          String(t.partitions),
          String(t.messages),
          String(t.bytes),
          `${duration(t.retentionMs)}, ${t.retentionBytes} B`,
          t.consumerGroups.map((g) => `${g.consumerGroup} (${g.lag})`).join(", ") || "-",
        ]),
      ));
    },
  },
  {
    name: "topics show",
    args: "<group>/<topic>",
    summary: "one topic: retention, consumer groups (slice, method, attempts), lag per partition",
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: ["aether topics show org.example.shop/orders"],
    async run(ctx, args) {
      const [name] = parseFor(this, args).positionals;
      const t = await ctx.api.json<TopicView>("GET", topicPath(name));
      if (ctx.json) return ctx.out(JSON.stringify(t));
      ctx.out([
        `topic ${t.group}/${t.topic}`,
        `  partitions  ${t.partitions}`,
        `  messages    ${t.messages} (${t.bytes} B)`,
        `  retention   ${duration(t.retentionMs)}, ${t.retentionBytes} B`,
        table(
          ["GROUP", "DELIVERS TO", "MAX ATTEMPTS", "LAG"],
          t.consumerGroups.map((
            g,
          ) => [g.consumerGroup, `${g.slice}.${g.method}`, String(g.maxAttempts), String(g.lag)]),
        ),
      ].join("\n"));
    },
  },
  {
    name: "topics lag",
    args: "<group>/<topic>",
    summary: "each consumer group's next offset, the partition's newest offset and the lag, per partition",
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: ["aether topics lag org.example.shop/orders"],
    async run(ctx, args) {
      const [name] = parseFor(this, args).positionals;
      const t = await ctx.api.json<TopicView>("GET", topicPath(name));
      if (ctx.json) return ctx.out(JSON.stringify(t.consumerGroups));
      ctx.out(t.consumerGroups.length === 0 ? `topic ${name} has no consumer groups` : lagRows(t));
    },
  },
  {
    name: "topics seek",
    args: "<group>/<topic> <consumer-group> <offset>",
    summary: "replay: move a consumer group to an offset (every partition, or --partition N)",
    flags: [{
      name: "partition",
      value: "N",
      description: "only this partition",
      int: { min: 0, max: 31 },
    }],
    positionals: { min: 3, max: 3 },
    examples: ["aether topics seek org.example.shop/orders billing 0"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const [name, consumerGroup, offsetText] = parsed.positionals;
      const offset = Number(offsetText);
      if (!Number.isSafeInteger(offset) || offset < 0) {
        throw new CliError(`topics seek: <offset> must be an integer >= 0, got "${offsetText}"`, EXIT_USAGE);
      }
      const partition = parsed.int("partition");
      const answer = await ctx.api.json<Record<string, unknown>>("POST", `${topicPath(name)}/seek`, {
        group: consumerGroup,
        offset,
        ...(partition === undefined ? {} : { partition }),
      });
      if (ctx.json) return ctx.out(JSON.stringify(answer));
      ctx.out(
        `consumer group ${consumerGroup} of ${name} moved to offset ${offset}` +
          (partition === undefined ? " (every partition)" : ` (partition ${partition})`),
      );
    },
  },
];
