/**
 * The load Forge's console starts (`POST /load`): one run at a time of the load generator, at a constant rate
 * or following a shape (`"ramp 10..400/s over 60s, spike 500/s for 5s"`, the grammar of `aether load --shape`),
 * against every node's app port (round-robin, failing over past a node that is down), its figures sampled every second into a
 * bounded series the console charts beside the faults injected, on the same time axis.
 */

import {
  type LoadProgress,
  type LoadRun,
  MAX_DURATION_MS,
  MAX_RATE_PER_SECOND,
  MAX_SHAPE_CHARS,
  parseShape,
  parseTarget,
  startLoad,
} from "../loadgen/mod.ts";

/** Points kept for the chart: ten minutes at one a second (older ones go first). */
export const MAX_LOAD_POINTS = 600;
/** Largest body template a console may send. */
export const MAX_LOAD_BODY_CHARS = 16 * 1024;

export interface LoadPoint {
  /** Epoch ms. */
  time: number;
  /** The rate the load asked for at that moment (a shape's current rate). */
  targetPerSecond: number;
  /** Answers per second over the last second. */
  perSecond: number;
  /** Share of those that succeeded (0..1); undefined without answers. */
  successRate?: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ConsoleLoadView {
  running: boolean;
  /** What the console's form starts with: the example's load template, when it has one. */
  defaults?: { target: string; body?: string };
  target?: string;
  ratePerSecond?: number;
  /** The shape played, in the grammar's words. */
  shape?: string;
  durationSeconds?: number;
  startedAt?: number;
  /** The rate asked for now, while running. */
  targetPerSecond?: number;
  points: LoadPoint[];
}

/** A constant rate for a time, or a shape (then without `ratePerSecond` and `durationSeconds`). */
export interface LoadRequest {
  target: string;
  ratePerSecond?: number;
  durationSeconds?: number;
  shape?: string;
  body?: string;
}

/** Checks a console's load request; a RangeError names the field that is wrong. */
export function parseLoadRequest(body: unknown): LoadRequest {
  const b = body as Record<string, unknown> | null;
  if (typeof b?.target !== "string") {
    throw new RangeError('load: "target" must be like "POST /api/v1/orders"');
  }
  try {
    parseTarget(b.target);
  } catch (e) {
    throw new RangeError(`load: ${(e as Error).message}`);
  }
  const template = b.body;
  if (template !== undefined && (typeof template !== "string" || template.length > MAX_LOAD_BODY_CHARS)) {
    throw new RangeError(`load: "body" must be text of at most ${MAX_LOAD_BODY_CHARS} characters`);
  }
  if (b.shape !== undefined) {
    return { ...shapeRequest(b), ...(template === undefined ? {} : { body: template as string }) };
  }
  const rate = b.ratePerSecond;
  if (typeof rate !== "number" || !Number.isInteger(rate) || rate < 1 || rate > MAX_RATE_PER_SECOND) {
    throw new RangeError(`load: "ratePerSecond" must be a whole number from 1 to ${MAX_RATE_PER_SECOND}`);
  }
  const seconds = b.durationSeconds;
  const maxSeconds = Math.floor(MAX_DURATION_MS / 1000);
  if (typeof seconds !== "number" || !Number.isInteger(seconds) || seconds < 1 || seconds > maxSeconds) {
    throw new RangeError(`load: "durationSeconds" must be a whole number from 1 to ${maxSeconds}`);
  }
  return {
    target: b.target,
    ratePerSecond: rate,
    durationSeconds: seconds,
    body: template as string | undefined,
  };
}

/** A shaped request: the shape parses (its error names the segment and the column), and stands alone. */
function shapeRequest(b: Record<string, unknown>): LoadRequest {
  if (typeof b.shape !== "string" || b.shape.length > MAX_SHAPE_CHARS) {
    throw new RangeError(`load: "shape" must be text of at most ${MAX_SHAPE_CHARS} characters`);
  }
  if (b.ratePerSecond !== undefined || b.durationSeconds !== undefined) {
    throw new RangeError(
      'load: a "shape" sets the rate and the duration: leave out "ratePerSecond" and ' +
        '"durationSeconds"',
    );
  }
  try {
    parseShape(b.shape, '"shape"');
  } catch (e) {
    throw new RangeError(`load: ${(e as Error).message}`);
  }
  return { target: b.target as string, shape: b.shape };
}

export class ConsoleLoad {
  defaults?: { target: string; body?: string };
  #run: LoadRun | null = null;
  #request: LoadRequest | null = null;
  #startedAt = 0;
  #durationSeconds = 0;
  #points: LoadPoint[] = [];

  /** Starts a run against `urls`; a run already going is stopped first. */
  start(request: LoadRequest, urls: string[]): void {
    this.stop();
    this.#request = request;
    this.#startedAt = Date.now();
    const schedule = request.shape === undefined
      ? { ratePerSecond: request.ratePerSecond, durationMs: request.durationSeconds! * 1000 }
      : { shape: parseShape(request.shape, '"shape"') };
    this.#durationSeconds = (schedule.shape?.durationMs ?? schedule.durationMs!) / 1000;
    const run = startLoad({
      target: request.target,
      urls,
      ...schedule,
      body: request.body,
      failover: true,
      progressIntervalMs: 1000,
      onProgress: (progress) => this.#sample(progress),
    });
    this.#run = run;
    run.finished.catch(() => {}).finally(() => {
      if (this.#run === run) this.#run = null;
    });
  }

  stop(): void {
    this.#run?.stop();
    this.#run = null;
  }

  view(): ConsoleLoadView {
    return {
      running: this.#run !== null,
      ...(this.defaults ? { defaults: this.defaults } : {}),
      ...(this.#request
        ? {
          target: this.#request.target,
          ...(this.#request.shape === undefined
            ? { ratePerSecond: this.#request.ratePerSecond }
            : { shape: parseShape(this.#request.shape).describe() }),
          durationSeconds: this.#durationSeconds,
          startedAt: this.#startedAt,
        }
        : {}),
      ...(this.#run ? { targetPerSecond: this.#run.progress().targetPerSecond } : {}),
      points: this.#points,
    };
  }

  #sample(progress: LoadProgress): void {
    const w = progress.window;
    this.#points = [...this.#points, {
      time: Date.now(),
      targetPerSecond: progress.targetPerSecond,
      perSecond: w.perSecond,
      ...(w.completed > 0 ? { successRate: w.succeeded / w.completed } : {}),
      p50Ms: w.p50Ms,
      p99Ms: w.p99Ms,
    }].slice(-MAX_LOAD_POINTS);
  }
}
