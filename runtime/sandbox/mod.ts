/**
 * Slice sandboxes: permission mapping, the SliceHost (one instance in a Worker or a child process), the
 * lifecycle table and reducer, the node's lifecycle executor, and reading a bundle's definition in a sandbox
 * without permissions (`slice build` and `slice init` are authoring tools: runtime/authoring).
 */

export {
  checkCpuLimits,
  DEFAULT_HOST_LIMITS,
  DEFAULT_HOST_TIMEOUTS,
  type FailureKind,
  type HostLimits,
  type HostLimitsOptions,
  type HostTimeouts,
  type InvokeOptions,
  type InvokeOutcome,
  type OutboundCall,
  type OutboundCallHandler,
  SANDBOX_TRANSITIONS,
  type SandboxState,
  type SandboxStats,
  type SliceErrorInfo,
  type SliceFailure,
  SliceHost,
  type SliceHostOptions,
  type SliceLogEntry,
} from "./host.ts";
export { DEFAULT_SLICE_LOG_LIMITS, type SliceLogLimits } from "./_log_limit.ts";
export {
  DEFAULT_POLICY,
  grantPermissions,
  type IsolationMode,
  netAllowed,
  type PermissionGrant,
  processPermissionFlags,
  type SandboxPolicy,
  validatePolicy,
  workerPermissions,
} from "./policy.ts";
export {
  canTransition,
  deadlineOf,
  DEFAULT_DEADLINES,
  type ExecutorRecord,
  inProgressOf,
  type InProgressState,
  isCommand,
  isInProgress,
  isTerminal,
  LIFECYCLE_STATES,
  type LifecycleCommand,
  type LifecycleDeadlines,
  type LifecycleEffect,
  type LifecycleEvent,
  type LifecycleState,
  type Operation,
  REMOVED,
  type Removed,
  step,
  type StepResult,
  TRANSITIONS,
} from "./lifecycle.ts";
export {
  type ArtifactSource,
  type ExecutorCommand,
  type InstanceCrash,
  type InstanceInfo,
  type SliceCpuLimits,
  SliceExecutor,
  type SliceExecutorOptions,
  type SliceSandboxSettings,
  type StateChange,
} from "./executor.ts";
export { describeBundle } from "./describe.ts";
export {
  fieldValueProblem,
  manifestProblems,
  type ManifestRoutes,
  resolveConfig,
  type RouteEntry,
  type SliceManifest,
  statusForError,
  validateManifest,
} from "../../slices/host.ts";
