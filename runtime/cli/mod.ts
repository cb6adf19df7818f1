/** The `aether` CLI against a node's management API: batch commands and the REPL. */

export { cliCommands, runCli } from "./main.ts";
export { CliError, EXIT_CONNECTION, EXIT_FAILED, EXIT_OK, EXIT_USAGE } from "./client.ts";
export type { CliCommand, CliFlag } from "./command.ts";
export {
  findForgeFile,
  FORGE_FILE,
  forgeApiAddresses,
  type ForgeFile,
  type ForgeNodeEntry,
  parseForgeFile,
} from "./forge_file.ts";
export { DEFAULT_HELP_WIDTH } from "./_help.ts";
export { HISTORY_LIMIT } from "./_repl.ts";
export {
  chooseToken,
  credentialsPath,
  FORGE_TOKEN_FILE,
  readCredentials,
  saveCredentials,
  type TokenChoice,
} from "./credentials.ts";
