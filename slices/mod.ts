/**
 * The Aether slice SDK: what slice authors import.
 *
 * ```ts
 * import { defineSlice, slice, SliceError, type ApiOf } from "@aether/slices";
 * ```
 *
 * A slice is one module whose default export is `defineSlice({...})`. It is bundled (with this SDK inside) by
 * `aether slice build` and runs in a permission-scoped sandbox; see `slices/README` in the project docs.
 */

export {
  defineSlice,
  isSliceDefinition,
  METHOD_NAME,
  respond,
  slice,
  SliceDefinitionError,
  SliceError,
} from "./_define.ts";
export type {
  CacheClient,
  CacheStats,
  InfraClients,
  KvBatchResult,
  KvClient,
  KvOperation,
  LockClient,
  LockLease,
} from "./_infra.ts";
export type {
  DeliveredMessage,
  PublishOptions,
  PublishResult,
  SubscribeOptions,
  TopicClient,
  TopicInfo,
} from "./_infra_pubsub.ts";
export type { SubscriptionDeclaration } from "./_subscriptions.ts";
export type { RateLimitClient, RateLimitClients } from "./_ratelimit.ts";
export type {
  AnySliceDefinition,
  ApiOf,
  BodyOf,
  CallOptions,
  ClientOf,
  Clients,
  ConfigField,
  ConfigFieldType,
  ConfigOf,
  ConfigSchema,
  Context,
  Hook,
  HttpMethod,
  HttpResponse,
  HttpSpec,
  JsonPrimitive,
  JsonValue,
  LogFields,
  Logger,
  LogLevel,
  MethodClient,
  PermissionSpec,
  RouteSpec,
  SecretsClient,
  SliceDefinition,
  SliceMethod,
  SliceRef,
  SliceSpec,
} from "./_types.ts";
