/** `artifact push|list|versions|info|delete`: the cluster's artifact repository. */

import { join, resolve } from "node:path";
import { CliError, EXIT_USAGE } from "../client.ts";
import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { formatBytes, local } from "./slice.ts";

interface ArtifactRecordView {
  manifest: {
    coordinates: string;
    methods: string[];
    routes: { prefix: string; entries: { method: string; httpMethod: string; fullPath: string }[] } | null;
    calls: Record<string, { artifact: string; range: string }>;
    requires: string[];
    permissions: { net: string[]; env: string[] };
    builtAt: string;
  };
  sha256: string;
  sizeBytes: number;
  holders: string[];
  pushedAt: number;
}

interface Summary {
  coordinates: string;
  sha256: string;
  sizeBytes: number;
  holders: string[];
  pushedAt: number;
}

/** Coordinates keep their colons in the path (they are valid there and read better in logs). */
const enc = (text: string) => encodeURIComponent(text).replaceAll("%3A", ":");

/** The manifest to push: the file given, or the one `*.manifest.json` in the directory given. */
async function manifestPath(target: string): Promise<string> {
  const path = resolve(target);
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch {
    throw new CliError(`artifact push: ${path} does not exist`, EXIT_USAGE);
  }
  if (!stat.isDirectory) return path;
  const manifests: string[] = [];
  for await (const entry of Deno.readDir(path)) {
    if (entry.isFile && entry.name.endsWith(".manifest.json")) manifests.push(entry.name);
  }
  if (manifests.length === 1) return join(path, manifests[0]);
  if (manifests.length === 0) {
    throw new CliError(
      `artifact push: ${path} holds no *.manifest.json (run "slice build" first)`,
      EXIT_USAGE,
    );
  }
  throw new CliError(
    `artifact push: ${path} holds ${manifests.length} manifests (${manifests.sort().join(", ")}); name one`,
    EXIT_USAGE,
  );
}

const when = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export const artifactCommands: CliCommand[] = [
  {
    name: "artifact push",
    args: "<manifest.json|dir>",
    summary: "publish a built slice to the cluster's repository",
    description:
      "Publish a built slice (its manifest, or the directory holding the one manifest); it succeeds " +
      "once --replicas nodes stored it.",
    flags: [{
      name: "replicas",
      value: "N",
      description: "how many nodes must store it before it counts as published (default min(3, members))",
      int: { min: 1, max: 100 },
    }],
    positionals: { min: 1, max: 1 },
    examples: ["aether artifact push greeter/dist"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      const replicas = parsed.int("replicas");
      const path = await manifestPath(positionals[0]);
      const { readBuiltSlice } = await import("../../authoring/mod.ts");
      const built = await local("artifact push", () => readBuiltSlice(path));
      const m = built.manifest;
      const form = new FormData();
      form.set("manifest", new Blob([JSON.stringify(m)], { type: "application/json" }), "manifest.json");
      form.set(
        "bundle",
        new Blob([built.bundle as Uint8Array<ArrayBuffer>], { type: "text/javascript" }),
        "bundle.js",
      );
      const query = replicas === undefined ? "" : `?replicas=${replicas}`;
      const response = await ctx.api.request(
        "PUT",
        `/api/v1/artifacts/${enc(m.coordinates)}${query}`,
        form,
        { "x-aether-sha256": m.sha256 },
      );
      const result = JSON.parse(new TextDecoder().decode(response.body)) as {
        created: boolean;
        record: ArtifactRecordView;
      };
      if (ctx.json) return ctx.out(JSON.stringify(result, null, 2));
      const r = result.record;
      ctx.out(
        result.created
          ? `published ${m.coordinates} (${formatBytes(r.sizeBytes)}, sha256 ${r.sha256.slice(0, 12)}) ` +
            `on ${r.holders.join(", ")}`
          : `${m.coordinates} was already published with the same content; nothing changed ` +
            `(holders ${r.holders.join(", ")})`,
      );
    },
  },
  {
    name: "artifact list",
    args: "",
    summary: "every published artifact version: size, hash, holders",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const { items } = await ctx.api.json<{ items: Summary[] }>("GET", "/api/v1/artifacts");
      if (ctx.json) return ctx.out(JSON.stringify(items, null, 2));
      ctx.out(table(
        ["ARTIFACT", "SIZE", "SHA256", "HOLDERS", "PUSHED"],
        items.map((i) => [
          i.coordinates,
          formatBytes(i.sizeBytes),
          i.sha256.slice(0, 12),
          i.holders.join(","),
          when(i.pushedAt),
        ]),
      ));
      ctx.out(`(${items.length} artifact version${items.length === 1 ? "" : "s"})`);
    },
  },
  {
    name: "artifact versions",
    args: "<group:artifact>",
    summary: "published versions of one slice, lowest first",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json<{ base: string; versions: string[] }>(
        "GET",
        `/api/v1/artifacts/${enc(positionals[0])}/versions`,
      );
      if (ctx.json) return ctx.out(JSON.stringify(r));
      if (r.versions.length === 0) ctx.out(`no published versions of ${r.base}`);
      for (const version of r.versions) ctx.out(version);
    },
  },
  {
    name: "artifact info",
    args: "<group:artifact:version>",
    summary: "an artifact's record: manifest, sha-256, size, holders",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json<ArtifactRecordView & { coordinates: string; local: boolean }>(
        "GET",
        `/api/v1/artifacts/${enc(positionals[0])}`,
      );
      if (ctx.json) return ctx.out(JSON.stringify(r, null, 2));
      const m = r.manifest;
      const calls = Object.entries(m.calls).map(([name, c]) => `${name} -> ${c.artifact} ${c.range}`);
      ctx.out(`artifact     ${r.coordinates}`);
      ctx.out(`sha256       ${r.sha256}`);
      ctx.out(`size         ${formatBytes(r.sizeBytes)} (${r.sizeBytes} bytes)`);
      ctx.out(`holders      ${r.holders.join(", ")}${r.local ? "" : "  (not on this node)"}`);
      ctx.out(`pushed       ${when(r.pushedAt)}   built ${m.builtAt}`);
      ctx.out(`methods      ${m.methods.join(", ")}`);
      ctx.out(
        `routes       ${
          m.routes ? m.routes.entries.map((e) => `${e.httpMethod} ${e.fullPath}`).join(", ") : "-"
        }`,
      );
      ctx.out(`calls        ${calls.length > 0 ? calls.join(", ") : "-"}`);
      ctx.out(`requires     ${m.requires.join(", ") || "-"}`);
      ctx.out(`net          ${m.permissions.net.join(", ") || "-"}`);
      ctx.out(`env          ${m.permissions.env.join(", ") || "-"}`);
    },
  },
  {
    name: "artifact delete",
    args: "<group:artifact:version>",
    summary: "delete a version nothing uses",
    description:
      "Delete an artifact version; refused while a blueprint, a deployment or an instance uses it.",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json<{ deleted: string; revision: number }>(
        "DELETE",
        `/api/v1/artifacts/${enc(positionals[0])}`,
      );
      ctx.out(ctx.json ? JSON.stringify(r) : `deleted ${r.deleted}`);
    },
  },
];
