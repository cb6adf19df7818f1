import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";

interface ServiceView {
  name: string;
  version: string;
  description: string;
  methods: string[];
  running: boolean;
  store?: string;
  installed?: boolean;
}

const servicePath = (name: string) => `/api/v1/infra/${encodeURIComponent(name)}`;

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
        ["SERVICE", "VERSION", "RUNNING", "DESCRIPTION"],
        items.map((s) => [s.name, s.version, s.running ? "yes" : "no", s.description]),
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
];
