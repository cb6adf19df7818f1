/**
 * The node feature "invoke": slice invocation and the application HTTP router, wired into a running node with
 * `startInvoke(options)`.
 *
 * - A SliceInvoker over the deployment feature's executor and endpoint registry and the node's mesh; its
 *   `outboundHandler` is where the node sends the calls slices make to each other.
 * - InvokeSettings (version weights, slice timeouts) and the RouteDirectory, kept current with every applied
 *   batch and rebuilt after a snapshot install.
 * - The application HTTP handler (app.ts) on the node's http port, and the management API (api.ts).
 */

import type { Hono } from "hono";
import type { Clock, Logger, MetricsRecorder, NodeId } from "../core/mod.ts";
import type { KvEvent } from "../kv/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvReader } from "../deployment/mod.ts";
import {
  type EndpointSource,
  type FlowLimits,
  type InvokeMesh,
  type InvokerStats,
  InvokeSettings,
  type LocalExecutor,
  type RetryPolicy,
  SliceInvoker,
  type SliceInvokerOptions,
  type SpanSink,
} from "../invoke/mod.ts";
import { type AppHandler, createAppHandler, DEFAULT_MAX_BODY_BYTES } from "./app.ts";
import { RouteDirectory } from "./directory.ts";
import { invokeRoutes } from "./api.ts";

/** What the invoke feature is built from. */
export interface InvokeFeatureOptions {
  self: NodeId;
  log: Logger;
  clock: Clock;
  /** Remote calls to and from other nodes. */
  mesh: InvokeMesh;
  /** This node, or a peer the mesh reaches now (for the routes API). */
  isConnected(node: NodeId): boolean;
  /** Settings writes of the management API are replicated writes. */
  kv: Pick<KvAccess, "write">;
  /** The node's current copy of the replicated state. */
  state(): KvReader;
  /** Called after every applied batch with its changes, in revision order. */
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  /** Called when a snapshot replaced the state wholesale. */
  onReset(listener: () => void): () => void;
  /** The local instances (the deployment feature's executor). */
  executor: LocalExecutor;
  /** Live endpoints by slice and method (the deployment feature's registry). */
  endpoints: EndpointSource;
  /** The executor's instance id of an endpoint (the deployment feature's). */
  instanceIdOf: NonNullable<SliceInvokerOptions["instanceIdOf"]>;
  /** Largest application request body (the node's --http-max-body-bytes). */
  maxBodyBytes?: number;
  retry?: Partial<RetryPolicy>;
  flow?: Partial<FlowLimits>;
  /** Default call deadline (30 s). */
  defaultTimeoutMs?: number;
  /** Where the router's and the invoker's spans go (runtime/metrics' trace ring); none: not traced. */
  spans?: SpanSink;
  /** Where calls run here and application requests are recorded (the node's metrics); none: not recorded. */
  metrics?: MetricsRecorder;
  /** Starts a slice scaled to zero for a call (the controller's activator); none: no scale to zero. */
  activate?: SliceInvokerOptions["activate"];
  /** The app port's shared preview secret (runtime/http/app.ts VERSION_HEADER); none: no preview there. */
  previewSecret?: string;
}

/** The running feature: the invoker for what is built on it, its routes, handler, status and stop hook. */
export interface InvokeFeature {
  readonly name: "invoke";
  readonly invoker: SliceInvoker;
  readonly api: Hono;
  /** Handles requests on the application HTTP port. */
  readonly app: AppHandler;
  status(): InvokeStatus;
  stop(): Promise<void>;
}

export interface InvokeStatus extends InvokerStats {
  routes: number;
  ignoredSettings: ReturnType<InvokeSettings["problems"]>;
}

export function startInvoke(options: InvokeFeatureOptions): InvokeFeature {
  const log = options.log.with({ component: "invoke" });
  const settings = InvokeSettings.fromKv(options.state());
  const invoker = createInvoker(options, settings, log);
  const directory = new RouteDirectory(() => options.state(), log);
  const unsubscribe = [
    options.onEvents((events) => {
      settings.apply(events);
      directory.apply(events);
    }),
    options.onReset(() => {
      settings.reset(options.state());
      directory.reset();
    }),
  ];
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return {
    name: "invoke",
    invoker,
    app: createAppHandler({
      routes: () => directory.table(),
      invoker,
      log: options.log.with({ component: "http" }),
      maxBodyBytes,
      spans: options.spans,
      metrics: options.metrics,
      node: options.self,
      previewSecret: options.previewSecret,
    }),
    api: invokeRoutes({
      routes: () => directory.table(),
      settings,
      invoker,
      get: (key) => options.state().get(key),
      write: (command) => options.kv.write(command),
      isConnected: options.isConnected,
      nowMs: () => Math.floor(options.clock.now()),
      maxBodyBytes,
    }),
    status: () => ({
      routes: directory.table().size,
      ...invoker.stats(),
      ignoredSettings: settings.problems(),
    }),
    stop() {
      // A closed invoker refuses new calls (slices still running until deployment stops get 503).
      invoker.close();
      for (const off of unsubscribe) off();
      return Promise.resolve();
    },
  };
}

function createInvoker(options: InvokeFeatureOptions, settings: InvokeSettings, log: Logger): SliceInvoker {
  return new SliceInvoker({
    self: options.self,
    mesh: options.mesh,
    endpoints: options.endpoints,
    executor: options.executor,
    instanceIdOf: options.instanceIdOf,
    routing: (slice) => settings.routing(slice),
    sliceTimeoutMs: (slice) => settings.timeoutMs(slice),
    log,
    retry: options.retry,
    flow: options.flow,
    defaultTimeoutMs: options.defaultTimeoutMs,
    spans: options.spans,
    metrics: options.metrics,
    ...(options.activate ? { activate: options.activate } : {}),
  });
}
