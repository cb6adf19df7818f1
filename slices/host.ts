/**
 * The runtime's side of the slice SDK: the manifest (its format, validation and the bundle's content hash),
 * config resolution, and the messages between a sandbox host and the slice runtime inside it. The sandbox,
 * the repository, deployment and authoring import these from here.
 *
 * Slice authors import slices/mod.ts instead: it is bundled into every slice and must stay free of npm, while
 * the manifest's version ranges load semver (through runtime/core).
 */

export * from "./manifest.ts";
export { defaultsOf, fieldValueProblem, resolveConfig, schemaProblems } from "./config.ts";
export type * from "./protocol.ts";
export {
  failedGuard,
  type GuardCondition,
  type JobDeclaration,
  jobsProblems,
  machinesProblems,
  type ManifestMachine,
} from "./_machines.ts";
