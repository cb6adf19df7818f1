/** The `aether` CLI against a node's management API: batch commands and the REPL. */

export { runCli } from "./main.ts";
export { CliError, EXIT_CONNECTION, EXIT_FAILED, EXIT_OK, EXIT_USAGE } from "./client.ts";
