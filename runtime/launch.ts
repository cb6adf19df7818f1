/**
 * `deno task node ...` runs this launcher, which starts the real node process with the narrow permissions its
 * own flags call for (data directory, secret file). Standard streams are inherited, so the node's ready line
 * and logs pass straight through and the node exits when standard input closes; SIGTERM and SIGINT are
 * forwarded; the launcher exits with the node's exit code.
 */

import { parseArgs } from "node:util";
import { nodeCommandArgs } from "./node/mod.ts";

const [command, ...args] = Deno.args;
if (command !== "node") {
  console.error(`launch.ts: unknown command "${command ?? ""}" (expected "node")`);
  Deno.exit(2);
}

// Only the two paths matter here; the node itself validates every flag and reports problems.
const { values } = parseArgs({
  args,
  strict: false,
  options: { "data-dir": { type: "string" }, "secret-file": { type: "string" } },
});
const dataDir = typeof values["data-dir"] === "string" ? values["data-dir"] : ".aether-data";
const secretFile = typeof values["secret-file"] === "string" ? values["secret-file"] : "secret";

const child = new Deno.Command(Deno.execPath(), {
  args: nodeCommandArgs({ dataDir, secretFile, nodeArgs: args }),
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  });
}
const status = await child.status;
Deno.exit(status.code);
