import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { CliError, EXIT_USAGE } from "../client.ts";

interface ServiceView {
  name: string;
  version: string;
  description: string;
  methods: string[];
  running: boolean;
  store?: string;
  installed?: boolean;
  /** The bundled service slice (absent: served by the nodes themselves). */
  slice?: {
    artifact: string;
    sha256: string;
    published: boolean;
    desired: number;
    active: number;
    instances: Array<{ node: string; state: string }>;
  };
}

/** "3/3 active" for a service slice, "node-served" for a service without one. */
function instancesText(s: ServiceView): string {
  return s.slice ? `${s.slice.active}/${s.slice.desired} active` : "node-served";
}

const servicePath = (name: string) => `/api/v1/infra/${encodeURIComponent(name)}`;
const cachePath = (group: string, cache: string) =>
  `/api/v1/caches/${encodeURIComponent(group)}/${encodeURIComponent(cache)}`;

interface CacheView {
  group: string;
  cache: string;
  defaultTtlMs: number | null;
  maxEntries: number;
  maxBytes: number;
  hits?: number;
  misses?: number;
  evictions?: number;
  entries?: number;
  bytes?: number;
}

/** `"60s"`, `"500ms"`, `"5m"`, `"2h"`, `"7d"`, `"0"` (none) → ms. */
export function parseTtl(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) {
    throw new CliError(
      `infra cache set: --default-ttl "${text}" is not a duration like 60s, 500ms, 5m, 2h, 7d or 0`,
      EXIT_USAGE,
    );
  }
  return Number(m[1]) *
    { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? (m[1] === "0" ? "ms" : "s")]!;
}

/** `"1048576"`, `"64KiB"`, `"64MiB"`, `"1GiB"` (also KB/MB/GB, taken as powers of 1024) → bytes. */
export function parseBytes(text: string): number {
  const m = /^(\d+)\s*(?:(k|m|g)i?b)?$/i.exec(text.trim());
  if (!m) {
    throw new CliError(
      `infra cache set: --max-bytes "${text}" is not a size like 67108864, 64MiB or 1GiB`,
      EXIT_USAGE,
    );
  }
  return Number(m[1]) * (m[2] ? 1024 ** ("kmg".indexOf(m[2].toLowerCase()) + 1) : 1);
}

function formatCache(c: CacheView): string {
  const bound = (n: number, unit = "") => (n > 0 ? `${n}${unit}` : "unbounded");
  const lines = [
    `cache ${c.group}/${c.cache}`,
    `  default TTL  ${c.defaultTtlMs ? `${c.defaultTtlMs} ms` : "none"}`,
    `  max entries  ${bound(c.maxEntries)} (per node)`,
    `  max bytes    ${bound(c.maxBytes, " B")} (per node)`,
  ];
  if (c.hits !== undefined) {
    lines.push(
      `  this node    hits ${c.hits}, misses ${c.misses}, evictions ${c.evictions}, ` +
        `entries ${c.entries}, bytes ${c.bytes}`,
    );
  }
  return lines.join("\n");
}

export const infraCommands: CliCommand[] = [
  {
    name: "infra list",
    args: "",
    summary: "the bundled infrastructure services, their versions and whether each runs",
    flags: [],
    positionals: { min: 0, max: 0 },
    examples: ["aether infra list"],
    async run(ctx, args) {
      parseFor(this, args);
      const { items } = await ctx.api.json<{ items: ServiceView[] }>("GET", "/api/v1/infra");
      if (ctx.json) return ctx.out(JSON.stringify(items));
      ctx.out(table(
        ["SERVICE", "VERSION", "RUNNING", "INSTANCES", "DESCRIPTION"],
        items.map((s) => [s.name, s.version, s.running ? "yes" : "no", instancesText(s), s.description]),
      ));
    },
  },
  {
    name: "infra status",
    args: "<service>",
    summary: "one infrastructure service: version, methods, store, running",
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: ["aether infra status cache"],
    async run(ctx, args) {
      const [name] = parseFor(this, args).positionals;
      const s = await ctx.api.json<ServiceView>("GET", servicePath(name));
      if (ctx.json) return ctx.out(JSON.stringify(s));
      ctx.out(
        [
          `${s.name} ${s.version}: ${s.description}`,
          `  running  ${s.running ? "yes" : "no (starts with the first blueprint that requires it)"}`,
          `  store    ${s.store ?? "-"}`,
          `  methods  ${s.methods.join(", ")}`,
          ...(s.slice
            ? [
              `  artifact ${s.slice.artifact} (sha-256 ${s.slice.sha256.slice(0, 12)}, ${
                s.slice.published ? "in the repository" : "not published yet"
              })`,
              `  instances ${instancesText(s)}: ${
                s.slice.instances.map((i) => `${i.node} ${i.state}`).join(", ") || "none"
              }`,
            ]
            : [`  instances node-served (no bundled slice)`]),
        ].join("\n"),
      );
    },
  },
  {
    name: "infra install",
    args: "<service>",
    summary: "start an infrastructure service now (a blueprint's requires starts it too)",
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: ["aether infra install cache"],
    async run(ctx, args) {
      const [name] = parseFor(this, args).positionals;
      const s = await ctx.api.json<ServiceView>("POST", `${servicePath(name)}/install`);
      if (ctx.json) return ctx.out(JSON.stringify(s));
      ctx.out(
        s.installed
          ? `${s.name} ${s.version} installed and running`
          : `${s.name} ${s.version} was already running`,
      );
    },
  },
  {
    name: "infra cache set",
    args: "<group> <cache>",
    summary: "set a cache's default TTL and LRU bounds (max entries, max bytes) for every node",
    description:
      'The slices of <group> reach the cache as ctx.infra.cache("<cache>"). Each node evicts the ' +
      "least recently used of the keys put through it beyond the bounds, so the cluster holds at most " +
      "nodes x max. Flags not given are reset to none / unbounded.",
    flags: [
      {
        name: "max-entries",
        value: "N",
        description: "entries per node (0: unbounded)",
        int: { min: 0, max: 1_000_000 },
      },
      {
        name: "max-bytes",
        value: "SIZE",
        description: "key + JSON value bytes per node: 67108864, 64MiB, 1GiB (0: unbounded)",
      },
      {
        name: "default-ttl",
        value: "DURATION",
        description: "TTL of puts that give none: 60s, 5m, 2h, 7d (0: none)",
      },
    ],
    positionals: { min: 2, max: 2 },
    examples: [
      "aether infra cache set org.example.shop sessions --max-entries 100000 --max-bytes 64MiB --default-ttl 30m",
    ],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const [group, cache] = parsed.positionals;
      const body: Record<string, number> = {};
      const entries = parsed.int("max-entries");
      if (entries !== undefined) body.maxEntries = entries;
      const bytes = parsed.string("max-bytes");
      if (bytes !== undefined) body.maxBytes = parseBytes(bytes);
      const ttl = parsed.string("default-ttl");
      if (ttl !== undefined) body.defaultTtlMs = parseTtl(ttl);
      const c = await ctx.api.json<CacheView>("PUT", cachePath(group, cache), body);
      if (ctx.json) return ctx.out(JSON.stringify(c));
      ctx.out(formatCache(c));
    },
  },
  {
    name: "infra cache show",
    args: "<group> <cache>",
    summary: "a cache's configuration and the counters of the node answering",
    flags: [],
    positionals: { min: 2, max: 2 },
    examples: ["aether infra cache show org.example.shop sessions"],
    async run(ctx, args) {
      const [group, cache] = parseFor(this, args).positionals;
      const c = await ctx.api.json<CacheView>("GET", cachePath(group, cache));
      if (ctx.json) return ctx.out(JSON.stringify(c));
      ctx.out(formatCache(c));
    },
  },
];
