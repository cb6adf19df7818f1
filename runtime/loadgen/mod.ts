/**
 * The load generator: open-loop HTTP load at a fixed rate or a shape (steps, ramps, a sine, spikes) against one or more nodes, with request templates,
 * per-second and per-URL figures and live progress. `aether load` and Forge's tests use it.
 */

export {
  DEFAULT_CONCURRENCY,
  DEFAULT_LATE_AFTER_MS,
  DEFAULT_TIMEOUT_MS,
  describeFetchError,
  type LoadOptions,
  type LoadProgress,
  type LoadReport,
  type LoadRun,
  type OutcomeKind,
  type RequestOutcome,
  runLoad,
  type Schedule,
  type SecondStats,
  type SegmentStats,
  startLoad,
  type UrlStats,
} from "./load.ts";
export {
  HTTP_METHODS,
  MAX_DURATION_MS,
  MAX_RATE_PER_SECOND,
  parseDuration,
  parseRate,
  parseTarget,
  parseUrls,
} from "./parse.ts";
export {
  LoadShape,
  MAX_SHAPE_CHARS,
  MAX_SHAPE_SEGMENTS,
  parseShape,
  type SegmentKind,
  type ShapeSegment,
} from "./shape.ts";
export { formatProgress, formatReport } from "./format.ts";
export { compileTemplate, type Template, uuidFrom } from "./_template.ts";
export { type LatencySummary, percentile } from "./_stats.ts";
