/**
 * Deployment: blueprints (TOML, validation, expansion with the slices they call), desired state (targets and
 * the commands the management API submits), the ClusterDeploymentManager (leader) and NodeDeploymentManager
 * (every node) as deterministic reducers, the executor interface the node manager drives, the endpoint
 * registry, and status views. These are pure; `startDeployment` (below) wires them to consensus, the mesh and
 * the sandbox.
 *
 * Wiring (per node):
 * - `cdm = new ClusterDeploymentManager(self)`; call `cdm.step({ kv: replica.state, members, nowMs,
 *   results, hasQuorum })` after applied batches that touch `leader`, `targets/`, `instances/`, `endpoints/`,
 *   `routes/`, `routing/` or `artifacts/`, on membership changes, when a write it sent completes, and at `wakeAtMs`
 *   (coalescing calls is fine). Submit each `commands[i].command` with `replica.write`; report
 *   `{ id, ok: isWriteOk(result or error) }` in the next step's `results`. It does nothing unless the `leader`
 *   record names `self`.
 * - `ndm = new NodeDeploymentManager(self)`; call `ndm.step({ kv, nowMs, hasQuorum, outcomes, crashes,
 *   results })` after batches touching `instances/{self}/`, when an executor action finishes
 *   (`perform(executor, action)` gives the outcome), when the executor reports a crash, when a write
 *   completes, when quorum changes, and at `wakeAtMs`. Start every returned action; submit every command.
 * - `registry = EndpointRegistry.fromKv(state)`, then `registry.apply(events)` for every applied batch and
 *   `registry.reset(state)` after a snapshot install.
 * - API: `planBlueprintSource` (POST /blueprints; return `plan` for `?dryRun=true`, else submit `command`),
 *   `planBlueprintDelete`, `planDeploy`, `planScale`, `planUndeploy`; `sliceStatuses` / `blueprintStatus`
 *   for GET /slices and .../status. A command whose transaction did not succeed means the state changed
 *   between reading and writing: plan again (or answer 409).
 *
 * The node feature is `startDeployment` (feature.ts): the managers on the real sandbox executor, the API routes
 * of `routes.ts`, and the `DeploymentService` of `service.ts` that the node hands to the invocation layer.
 */
export {
  type BlueprintProblem,
  type BlueprintSliceSpec,
  MAX_BLUEPRINT_BYTES,
  MAX_INSTANCES,
  parseBlueprint,
  type ParsedBlueprint,
  validateBlueprint,
} from "./blueprint.ts";
export {
  activationOrder,
  blueprintRecordOf,
  expandBlueprint,
  type ExpandedBlueprint,
  findCycle,
} from "./expand.ts";
export {
  type ArtifactCatalog,
  callsOf,
  type DeployManifest,
  ManifestCatalog,
  manifestOfArtifactValue,
  type SliceCall,
} from "./artifacts.ts";
export {
  catalogFromKv,
  type DeploymentView,
  type EndpointView,
  type InstanceView,
  type KvReader,
  type MemberStatus,
  type NodeCondition,
  nodeCondition,
  routedVersion,
  type RouteView,
  type RoutingView,
  type TargetView,
  ViewReader,
} from "./view.ts";
export {
  type BlueprintPlan,
  planBlueprintApply,
  planBlueprintDelete,
  planBlueprintSource,
  planDeploy,
  type Planned,
  planScale,
  planUndeploy,
  type SlicePlan,
  type TargetAction,
  type TargetPlanEntry,
  type TargetSummary,
} from "./targets.ts";
export {
  ClusterDeploymentManager,
  type ClusterManagerInput,
  type ClusterManagerOptions,
  type ClusterManagerOutput,
  type Decision,
  DEFAULT_CLUSTER_MANAGER_OPTIONS,
  type DeploymentCommand,
  isWriteOk,
  reconcile,
  type Reconciliation,
  type WriteResult,
} from "./cluster_manager.ts";
export {
  DEFAULT_NODE_MANAGER_OPTIONS,
  type LocalInstance,
  NodeDeploymentManager,
  type NodeManagerInput,
  type NodeManagerOptions,
  type NodeManagerOutput,
  type QuorumLossDecision,
  quorumLossDecision,
  type QuorumLossPolicy,
  type RunState,
} from "./node_manager.ts";
export {
  type ExecutorAction,
  type ExecutorCrash,
  type ExecutorOp,
  type ExecutorOutcome,
  type LifecycleExecutor,
  perform,
} from "./executor.ts";
export { type Endpoint, EndpointRegistry, ENDPOINTS_PREFIX } from "./endpoints.ts";
export {
  type BackoffStatus,
  blueprintStatus,
  type InstanceStatus,
  type SliceStatus,
  sliceStatuses,
} from "./status.ts";
export { type DeploymentService, instanceIdOf } from "./service.ts";
export {
  type DeploymentFeature,
  type DeploymentFeatureOptions,
  type DeploymentStatus,
  startDeployment,
} from "./feature.ts";
