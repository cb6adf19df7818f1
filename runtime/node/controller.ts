/**
 * Builds the autoscaling controller feature (runtime/control/controller_feature.ts) for the node: the ONNX
 * forecaster from the committed model file (onnxruntime-web loads lazily on the leader's first forecast; the
 * TypeScript pass answers until then, and for good if it cannot load), the loop on the leader, and its
 * management API (runtime/api/controller.ts).
 */

import { controllerRoutes } from "../api/mod.ts";
import {
  Activator,
  FORECAST_MODEL_URL,
  type Forecaster,
  OnnxForecaster,
  startController,
} from "../control/mod.ts";
import type { MetricsView } from "../metrics/mod.ts";
import type { Feature, NodeContext } from "./context.ts";

/** Scale to zero's activation (the invoker's `activate`): built before the invoker, stopped with the controller. */
export function startActivator(core: NodeContext): Activator {
  return new Activator({ ...core, log: core.log.with({ component: "activation" }) });
}

export function startControllerFeature(
  core: NodeContext,
  metrics: MetricsView | undefined,
  activator?: Activator,
): Feature {
  const log = core.log.with({ component: "controller" });
  const controller = startController({
    ...core,
    ...(metrics ? { metrics } : {}),
    ...(loadForecaster(core) ?? {}),
  });
  return {
    name: "controller",
    api: controllerRoutes(controller),
    status: () => ({ ...controller.status(), ...(activator ? { scaleToZero: activator.stats() } : {}) }),
    stop: async () => {
      activator?.close();
      await controller.stop();
    },
  };

  function loadForecaster(core: NodeContext): { forecaster: Forecaster } | undefined {
    try {
      const model = Deno.readFileSync(FORECAST_MODEL_URL);
      return {
        forecaster: new OnnxForecaster(model, {
          onError: (e) =>
            log.warn("onnx forecaster failed; the TypeScript pass answers", { error: e.message }),
        }),
      };
    } catch (e) {
      core.log.warn("no forecast model; the decision tree runs alone", { error: (e as Error).message });
      return undefined;
    }
  }
}
