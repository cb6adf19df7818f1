/**
 * The node feature "invoke": slice invocation and the application HTTP router, wired into a running node.
 *
 * - A SliceInvoker over the deployment feature's executor and endpoint registry (service "deployment") and the
 *   node's mesh; it becomes the executor's handler for the calls slices make to each other.
 * - InvokeSettings (version weights, slice timeouts) and the RouteDirectory, kept current with every applied
 *   batch and rebuilt after a snapshot install.
 * - The application HTTP handler (app.ts) on the node's http port, and the management API (api.ts).
 * - The service "invoke" (`{ invoker }`) for features built on top (metrics, infrastructure slices).
 */

import type { Feature, FeatureFactory, NodeContext } from "../node/context.ts";
import type { KvEvent } from "../kv/commands.ts";
import { DEPLOYMENT_SERVICE, type DeploymentService } from "../deployment/service.ts";
import { type FlowLimits, type RetryPolicy, SliceInvoker } from "../invoke/mod.ts";
import { InvokeSettings } from "../invoke/settings.ts";
import { createAppHandler, DEFAULT_MAX_BODY_BYTES } from "./app.ts";
import { RouteDirectory } from "./directory.ts";
import { invokeRoutes } from "./api.ts";

export const INVOKE_SERVICE = "invoke";

export interface InvokeService {
  readonly invoker: SliceInvoker;
}

export interface InvokeFeatureOptions {
  retry?: Partial<RetryPolicy>;
  flow?: Partial<FlowLimits>;
  /** Default call deadline (30 s). */
  defaultTimeoutMs?: number;
}

/** The feature factory to list in runtime/node/features.ts (after deployment). */
export function invokeFeature(options: InvokeFeatureOptions = {}): FeatureFactory {
  return (ctx) => startInvoke(ctx, options);
}

function startInvoke(ctx: NodeContext, options: InvokeFeatureOptions): Feature {
  const deployment = ctx.services.use<DeploymentService>(DEPLOYMENT_SERVICE);
  const log = ctx.log.with({ component: "invoke" });
  const settings = InvokeSettings.fromKv(ctx.state());
  const invoker = new SliceInvoker({
    self: ctx.self,
    mesh: ctx.mesh,
    endpoints: deployment.endpoints,
    executor: deployment.executor,
    instanceIdOf: deployment.instanceIdOf,
    routing: (slice) => settings.routing(slice),
    sliceTimeoutMs: (slice) => settings.timeoutMs(slice),
    log,
    retry: options.retry,
    flow: options.flow,
    defaultTimeoutMs: options.defaultTimeoutMs,
  });
  deployment.setOutboundCallHandler(invoker.outboundHandler);
  const directory = new RouteDirectory(() => ctx.state(), log);
  const unsubscribe = [
    ctx.onEvents((events: readonly KvEvent[]) => {
      settings.apply(events);
      directory.apply(events);
    }),
    ctx.onReset(() => {
      settings.reset(ctx.state());
      directory.reset();
    }),
  ];
  const maxBodyBytes = ctx.flags.httpMaxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const app = createAppHandler({
    routes: () => directory.table(),
    invoker,
    log: ctx.log.with({ component: "http" }),
    maxBodyBytes,
  });
  const api = invokeRoutes({
    routes: () => directory.table(),
    settings,
    invoker,
    get: (key) => ctx.state().get(key),
    write: (command) => ctx.kv.write(command),
    isConnected: deployment.isConnected,
    nowMs: () => Math.floor(ctx.clock.now()),
    maxBodyBytes,
  });
  ctx.services.provide<InvokeService>(INVOKE_SERVICE, { invoker });

  return {
    name: "invoke",
    api,
    app,
    status: () => ({
      routes: directory.table().size,
      ...invoker.stats(),
      ignoredSettings: settings.problems(),
    }),
    stop() {
      deployment.setOutboundCallHandler(undefined);
      invoker.close();
      for (const off of unsubscribe) off();
      return Promise.resolve();
    },
  };
}
