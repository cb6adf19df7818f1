/**
 * The shell text that starts `aether`: one `exec` of a Deno binary on runtime/main.ts per permission set (see
 * runtime/launch.ts for which command gets which, and why). Shared by the installed launcher (install.ts) and
 * the self-contained dist/aether (compile.ts), which differ only in where the Deno binary and the runtime are.
 *
 * Run-time flags: `--cached-only` (nothing is downloaded when a command runs; the install or the build fetched
 * every dependency), `--config` naming the project's deno.json (its import map and node_modules are found from
 * any working directory). `deno run` does not type check.
 */

import { commandPermissions, type LaunchedCommand, NODE_CLI_SUBCOMMANDS } from "../runtime/launch.ts";

/** The Deno version the project is pinned to (README, .ci/run). */
export const DENO_VERSION = "2.9.6";

/** `'...'` for sh: every character literal. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'"'"'`)}'`;
}

/**
 * The `case` that execs the command. Expects the sh variables DENO (the Deno binary) and ROOT (the directory
 * holding runtime/, deno.json and node_modules/) to be set.
 */
export function execCase(): string {
  const line = (command: LaunchedCommand) => {
    // "$DENO" and "$ROOT" are expanded by the shell: node may start only the binary that runs it.
    const flags = commandPermissions(command, { deno: "$DENO", root: "$ROOT" }).map((f) => `"${f}"`).join(
      " ",
    );
    return `exec "$DENO" run --cached-only --config "$ROOT/deno.json" ${flags} "$ROOT/runtime/main.ts" "$@"`;
  };
  return [
    `case "\${1-}" in`,
    // `aether node drain n2` (runtime/launch.ts NODE_CLI_SUBCOMMANDS) is a CLI command.
    `  node) case "\${2-}" in ${NODE_CLI_SUBCOMMANDS.join("|")}) ${line("cli")} ;; *) ${
      line("node")
    } ;; esac ;;`,
    `  forge) ${line("forge")} ;;`,
    `  *) ${line("cli")} ;;`,
    `esac`,
  ].join("\n");
}

/** The installed launcher: a Deno binary and a checkout, both given as absolute paths. */
export function installedLauncher(input: { deno: string; root: string }): string {
  const reinstall = `cd ${shellQuote(input.root)} && npx -y deno@${DENO_VERSION} task install`;
  return `#!/bin/sh
# The \`aether\` command, written by \`deno task install\` in ${input.root}.
# It runs that checkout with the Deno binary that ran the install; run the install again to update it.
DENO=${shellQuote(input.deno)}
ROOT=${shellQuote(input.root)}
REINSTALL=${shellQuote(reinstall)}
if [ ! -x "$DENO" ]; then
  echo "aether: the Deno binary it was installed with is gone: $DENO" >&2
  echo "aether: (npx's cache was probably cleaned). Install again with: $REINSTALL" >&2
  exit 127
fi
if [ ! -f "$ROOT/runtime/main.ts" ]; then
  echo "aether: the Aether checkout it was installed from is gone: $ROOT" >&2
  echo "aether: install again from a checkout with: npx -y deno@${DENO_VERSION} task install" >&2
  exit 127
fi
${execCase()}
`;
}
