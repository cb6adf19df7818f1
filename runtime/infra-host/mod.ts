/**
 * Infrastructure hosting: the partitioned, replicated store that infrastructure services (cache, lock, rate
 * limiter, ...) keep their data in. README.md states its guarantees; /api/v1/stores is its management API.
 *
 *   const store = await stores.open("cache.sessions", { replicas: 3, writeQuorum: 2, engine: "sqlite" });
 *   const { version } = await store.put("user:42", JSON.stringify(user), { ttlMs: 60_000 });
 *   const entry = await store.get("user:42"); // { key, value, version, expiresAtMs? } | undefined
 *   await store.put("stock:apple", "9", { ifVersion: entry.version }); // compare-and-set (0: only if absent)
 *   await store.delete("user:42");
 */
export {
  type InfraStoreFeature,
  type InfraStoreOptions,
  type InfraStores,
  startInfraStore,
} from "./feature.ts";
export {
  type CallOptions,
  DEFAULT_STORE_SETTINGS,
  type DeleteOptions,
  type PutOptions,
  type Store,
  type StoreEntry,
  type StoreOptions,
  type StoreSettings,
} from "./store_node.ts";
export { hash32, PARTITION_COUNT, partitionOf } from "./partitioning.ts";
export { MAX_GROUP_BYTES_PER_STORE, partitionShare } from "./_group_quota.ts";
export { type BalancerSettings, DEFAULT_BALANCER_SETTINGS } from "./balancer.ts";
export { STORE_CHANNEL } from "./_protocol.ts";
export {
  INFRA_GROUP,
  type InfraService,
  type InfraServices,
  missingMessage,
  SERVICES,
  startInfraServices,
} from "./services.ts";
export {
  type ConfigFeature,
  type ConfigFeatureOptions,
  NODE_SERVED_SERVICES,
  startConfigFeature,
} from "./config_feature.ts";
export { ConfigService, NODE_SETTINGS, type SettingView, type SliceConfigView } from "./config.ts";
export {
  importMasterKey,
  newMasterKeyText,
  readMasterKeyFile,
  type SecretInfo,
  type SecretReadAudit,
  SecretsService,
} from "./secrets.ts";
export { type LockService, type LockServiceOptions, startLockService } from "./lock_service.ts";
export {
  jobView,
  nextOccurrence,
  type Scheduler,
  type SchedulerOptions,
  startScheduler,
} from "./scheduler.ts";
export { schedulerRoutes } from "./scheduler_api.ts";
export { startStateMachines, type StateMachines, type StateMachinesOptions } from "./statemachine.ts";
export {
  type DeliveryCounters,
  type PubsubService,
  startPubsubService,
  type TopicView,
} from "./pubsub_service.ts";
export { pubsubRoutes } from "./pubsub_api.ts";
export { cacheStats } from "./cache_service.ts";
export {
  checkConfig as checkDatabaseConfig,
  type DatabaseConfig,
  type DatabaseView,
  DB_SERVICE,
  type PostgresFactory,
  type SqlDatabases,
  startSqlDatabases,
} from "./sqldb_service.ts";
export { databaseRoutes } from "./sqldb_api.ts";
export type { SqlBackend, SqlQueryOptions, SqlResult, SqlValue } from "./sql_backend.ts";
export {
  createPostgresBackend,
  DEFAULT_POSTGRES_SETTINGS,
  parsePostgresUrl,
  type PostgresBackend,
  type PostgresBackendOptions,
  type PostgresPoolStats,
  redactUrl,
  startPostgresBackend,
} from "./postgres_backend.ts";
export {
  createHttpClient,
  declaredOutbound,
  type HttpClient,
  type OutboundHostStats,
  parseAllowList,
  parseHostEntry,
} from "./http_client.ts";
export { type OutboundNodeView, outboundRoutes } from "./http_client_api.ts";
export {
  type AspectEntry,
  type Aspects,
  type AspectSizeStats,
  boundedJson,
  redact,
  redactionRules,
  startAspects,
} from "./aspects.ts";
export {
  ServiceSlices,
  type ServiceSlicesCore,
  type ServiceSliceStatus,
  startServiceSlices,
} from "./service_slices.ts";
export { BUNDLED_DIST, type BundledService, readBundledRepository } from "./bundled.ts";
export { RateLimiter, type RateLimitStatus, splitShares, TokenBucket } from "./ratelimit.ts";
