/**
 * `aether secret set|rotate|list|delete`. A value is read from standard input or `--file`, never from the
 * command line (argv is visible to every user of the machine through ps), and never printed.
 */

import { parseCommandArgs } from "../_args.ts";
import { printable, table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { CliError, EXIT_USAGE } from "../client.ts";

interface SecretInfo {
  name: string;
  current: number;
  versions: Array<{ version: number; createdAt: number }>;
  updatedAt: number;
}

/** A --file that cannot be read is a usage error naming it (not a stack trace). */
async function readFile(file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (e) {
    throw new CliError(`--file "${file}" cannot be read: ${(e as Error).message}`, EXIT_USAGE);
  }
}

/** The secret from --file, else all of standard input; one trailing newline is dropped. */
async function readValue(file: string | undefined): Promise<string> {
  let text: string;
  if (file !== undefined) text = await readFile(file);
  else {
    if (Deno.stdin.isTerminal()) console.error("Type the secret, then Ctrl-D:");
    text = await new Response(Deno.stdin.readable).text();
  }
  text = text.replace(/\r?\n$/, "");
  if (text.length === 0) {
    throw new CliError(`the secret is empty (${file ? `file ${file}` : "standard input"})`, EXIT_USAGE);
  }
  return text;
}

const VALUE_FLAGS = [{
  name: "file",
  value: "FILE",
  description: "read the value from FILE (default: stdin)",
}];

function written(info: SecretInfo, verb: string): string {
  return `${verb} ${info.name}: version ${info.current} (${info.versions.length} kept)`;
}

export const secretCommands: CliCommand[] = [
  {
    name: "secret set",
    args: "<name>",
    summary: "creates a secret or adds a version; the value from stdin or --file, never the command line",
    description:
      "The value is encrypted (AES-256-GCM) with the cluster master key before it is stored; only " +
      "slices that declare the name in `secrets: [...]` read it (ctx.secrets.get), and every read is audited.",
    flags: VALUE_FLAGS,
    positionals: { min: 1, max: 1 },
    examples: [
      "printf %s 's3cret' | aether secret set db-password",
      "aether secret set tls-key --file key.pem",
    ],
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("secret set", args, { file: { type: "string" } }, {
        min: 1,
        max: 1,
        names: "<name>",
      });
      const value = await readValue(values.file as string | undefined);
      const info = await ctx.api.json<SecretInfo>(
        "PUT",
        `/api/v1/secrets/${encodeURIComponent(positionals[0])}`,
        {
          value,
        },
      );
      ctx.out(ctx.json ? JSON.stringify(info, null, 2) : written(info, "stored"));
    },
  },
  {
    name: "secret rotate",
    args: "<name>",
    summary: "a new version of an existing secret (value from stdin or --file); slices read it from then on",
    flags: VALUE_FLAGS,
    positionals: { min: 1, max: 1 },
    examples: ["printf %s 'n3w' | aether secret rotate db-password"],
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("secret rotate", args, { file: { type: "string" } }, {
        min: 1,
        max: 1,
        names: "<name>",
      });
      const value = await readValue(values.file as string | undefined);
      const info = await ctx.api.json<SecretInfo>(
        "POST",
        `/api/v1/secrets/${encodeURIComponent(positionals[0])}/rotate`,
        { value },
      );
      ctx.out(ctx.json ? JSON.stringify(info, null, 2) : written(info, "rotated"));
    },
  },
  {
    name: "secret list",
    args: "",
    summary: "secret names and versions (values are never shown)",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseCommandArgs("secret list", args, {}, { min: 0, max: 0, names: "no arguments" });
      const answer = await ctx.api.json<{ enabled: boolean; secrets: SecretInfo[] }>(
        "GET",
        "/api/v1/secrets",
      );
      if (ctx.json) return ctx.out(JSON.stringify(answer, null, 2));
      if (!answer.enabled) ctx.out("secrets are off on this node (start it with --secrets-key-file)");
      if (answer.secrets.length === 0) return ctx.out("no secrets");
      ctx.out(table(
        ["NAME", "VERSION", "VERSIONS KEPT", "UPDATED"],
        answer.secrets.map((s) => [
          printable(s.name),
          String(s.current),
          String(s.versions.length),
          new Date(s.updatedAt).toISOString(),
        ]),
      ));
    },
  },
  {
    name: "secret delete",
    args: "<name>",
    summary: "deletes a secret and every version",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseCommandArgs("secret delete", args, {}, {
        min: 1,
        max: 1,
        names: "<name>",
      });
      const answer = await ctx.api.json<{ deleted: string }>(
        "DELETE",
        `/api/v1/secrets/${encodeURIComponent(positionals[0])}`,
      );
      ctx.out(ctx.json ? JSON.stringify(answer) : `deleted ${answer.deleted}`);
    },
  },
];
