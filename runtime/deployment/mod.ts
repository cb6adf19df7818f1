/**
 * Deployment: blueprints (TOML, validation, expansion with the slices they call), desired state (targets and
 * the commands the management API submits), the ClusterDeploymentManager (leader) and NodeDeploymentManager
 * (every node) as deterministic reducers, the executor interface the node manager drives, the endpoint
 * registry, and status views. Everything here is pure: the node wires it to consensus, the mesh and the
 * sandbox.
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
  type RouteView,
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
  type LocalPhase,
  NodeDeploymentManager,
  type NodeManagerInput,
  type NodeManagerOptions,
  type NodeManagerOutput,
  type QuorumLossDecision,
  quorumLossDecision,
  type QuorumLossPolicy,
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
export { blueprintStatus, type InstanceStatus, type SliceStatus, sliceStatuses } from "./status.ts";
