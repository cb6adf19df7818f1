/**
 * The features a node runs on top of the cluster core, in start order (a feature may rely on the ones before
 * it through the KV store and the mesh). Add a feature by adding its factory here.
 */

import type { FeatureFactory } from "./context.ts";
import { repositoryFeature } from "../repository/mod.ts";
import { deploymentFeature } from "../deployment/feature.ts";
import { invokeFeature } from "../http/feature.ts";

export const FEATURES: FeatureFactory[] = [
  repositoryFeature,
  deploymentFeature(),
  invokeFeature(),
];
