/**
 * Layer 2 of the control loop: a small time-series model that predicts a slice's request rate a few minutes
 * ahead from its last hour of per-minute rates. The controller uses a confident forecast only to add capacity
 * early (controller.ts); it never removes capacity because of one.
 *
 * The model is a tiny MLP over a normalized window: the 60 per-minute rates divided by their mean go in, the
 * next `HORIZON_MINUTES` rates (divided by the same mean) come out; one hidden layer of `HIDDEN` ReLU units.
 * forecast_train.ts trains it on synthetic traffic and writes it as an ONNX file (forecast_onnx.ts), which
 * onnxruntime-web runs on the leader; `mlpForward` here is the same computation in TypeScript, the fallback
 * when the runtime cannot load (and the reference its outputs are checked against).
 *
 * Confidence: the model's own relative error when it predicts the last `HORIZON_MINUTES` known minutes from
 * the window before them, turned into 0..1 (1 − error), times how much of the hour the history covers.
 */

/** Per-minute rates the model reads. */
export const WINDOW_MINUTES = 60;
/** Minutes ahead it predicts (1..5). */
export const HORIZON_MINUTES = 5;
export const HIDDEN = 16;
/** Fewer complete minutes than this and no forecast is made. */
export const MIN_HISTORY_MINUTES = 15;

/** The MLP's parameters (row-major: w1[i * HIDDEN + j] is input i to hidden j). */
export interface MlpWeights {
  w1: Float32Array; // WINDOW_MINUTES x HIDDEN
  b1: Float32Array; // HIDDEN
  w2: Float32Array; // HIDDEN x HORIZON_MINUTES
  b2: Float32Array; // HORIZON_MINUTES
}

/** The forward pass on one normalized window; returns the normalized predictions. */
export function mlpForward(weights: MlpWeights, x: ArrayLike<number>): Float32Array {
  const hidden = new Float32Array(HIDDEN);
  for (let j = 0; j < HIDDEN; j++) {
    let sum = weights.b1[j];
    for (let i = 0; i < WINDOW_MINUTES; i++) sum += x[i] * weights.w1[i * HIDDEN + j];
    hidden[j] = sum > 0 ? sum : 0;
  }
  const out = new Float32Array(HORIZON_MINUTES);
  for (let k = 0; k < HORIZON_MINUTES; k++) {
    let sum = weights.b2[k];
    for (let j = 0; j < HIDDEN; j++) sum += hidden[j] * weights.w2[j * HORIZON_MINUTES + k];
    out[k] = sum;
  }
  return out;
}

/** A window of per-minute rates (oldest first), padded at the front to WINDOW_MINUTES, and its scale. */
export function normalizeWindow(minutes: readonly number[]): { x: Float32Array; scale: number } {
  const recent = minutes.slice(-WINDOW_MINUTES);
  const padded = new Array<number>(WINDOW_MINUTES - recent.length).fill(recent[0] ?? 0).concat(recent);
  const mean = padded.reduce((a, b) => a + b, 0) / WINDOW_MINUTES;
  // Near-idle slices: a floor keeps a trickle of calls from looking like huge relative swings.
  const scale = Math.max(mean, 1);
  return { x: Float32Array.from(padded, (r) => r / scale), scale };
}

export interface Forecast {
  /** The highest predicted rate over the next HORIZON_MINUTES (what capacity must be ready for). */
  requestsPerSecond: number;
  confidence: number;
  horizonMinutes: number;
  /** Which model answered: `onnx` or `typescript`. */
  model: string;
}

export interface Forecaster {
  /** A forecast from a slice's per-minute rates (oldest first), or undefined without enough history. */
  predict(slice: string, minutes: readonly number[]): Forecast | undefined;
  describe(): string;
  /** Loads what the forecaster needs ahead of its first forecast (the leader calls it when elected). */
  ready?(): Promise<void>;
}

/** Runs a window through `run` and turns its output into a forecast with a confidence. */
export function forecastFrom(
  minutes: readonly number[],
  run: (x: Float32Array) => ArrayLike<number>,
  model: string,
): Forecast | undefined {
  if (minutes.length < MIN_HISTORY_MINUTES) return undefined;
  const { x, scale } = normalizeWindow(minutes);
  const out = run(x);
  let peak = 0;
  for (let k = 0; k < HORIZON_MINUTES; k++) peak = Math.max(peak, out[k] * scale);
  return {
    requestsPerSecond: Math.max(0, peak),
    confidence: confidenceOf(minutes, run),
    horizonMinutes: HORIZON_MINUTES,
    model,
  };
}

/** 1 − the model's relative error on the latest known minutes, times the share of the hour covered. */
function confidenceOf(minutes: readonly number[], run: (x: Float32Array) => ArrayLike<number>): number {
  const known = minutes.slice(-HORIZON_MINUTES);
  const before = minutes.slice(0, -HORIZON_MINUTES);
  if (before.length < MIN_HISTORY_MINUTES - HORIZON_MINUTES) return 0;
  const { x, scale } = normalizeWindow(before);
  const out = run(x);
  let error = 0, total = 0;
  for (let k = 0; k < HORIZON_MINUTES; k++) {
    error += Math.abs(out[k] * scale - known[k]);
    total += Math.max(known[k], 1);
  }
  const coverage = Math.min(1, minutes.length / WINDOW_MINUTES);
  return Math.max(0, Math.min(1, 1 - error / total)) * coverage;
}

/** The pure-TypeScript forecaster (the fallback, and the reference the ONNX runtime is checked against). */
export class TsForecaster implements Forecaster {
  constructor(private readonly weights: MlpWeights) {}

  predict(_slice: string, minutes: readonly number[]): Forecast | undefined {
    return forecastFrom(minutes, (x) => mlpForward(this.weights, x), "typescript");
  }

  describe(): string {
    return "typescript";
  }
}

/** Slices whose history is kept at most (the least recently added go first). */
export const MAX_HISTORY_SLICES = 1_000;

interface SliceHistory {
  /** Complete minutes: [minute start ms, mean rate], oldest first, at most WINDOW_MINUTES. */
  minutes: [number, number][];
  currentMinute: number;
  sum: number;
  count: number;
}

/** Per-minute request rates per slice over the last hour, built from the controller's 1 s observations. */
export class RateHistory {
  readonly #slices = new Map<string, SliceHistory>();

  add(slice: string, nowMs: number, requestsPerSecond: number): void {
    const minute = Math.floor(nowMs / 60_000) * 60_000;
    let h = this.#slices.get(slice);
    if (!h) {
      if (this.#slices.size >= MAX_HISTORY_SLICES) this.#slices.delete(this.#slices.keys().next().value!);
      h = { minutes: [], currentMinute: minute, sum: 0, count: 0 };
      this.#slices.set(slice, h);
    }
    if (minute !== h.currentMinute) {
      if (h.count > 0) h.minutes.push([h.currentMinute, h.sum / h.count]);
      if (h.minutes.length > WINDOW_MINUTES) h.minutes.splice(0, h.minutes.length - WINDOW_MINUTES);
      h.currentMinute = minute;
      h.sum = 0;
      h.count = 0;
    }
    h.sum += requestsPerSecond;
    h.count++;
  }

  /** Complete per-minute rates, oldest first. */
  minutes(slice: string): number[] {
    return (this.#slices.get(slice)?.minutes ?? []).map(([, rate]) => rate);
  }

  points(slice: string): { at: number; requestsPerSecond: number }[] {
    return (this.#slices.get(slice)?.minutes ?? []).map(([at, rate]) => ({
      at,
      requestsPerSecond: Math.round(rate * 100) / 100,
    }));
  }

  slices(): string[] {
    return [...this.#slices.keys()];
  }

  /** Forgets slices no longer controlled. */
  retain(slices: ReadonlySet<string>): void {
    for (const slice of this.#slices.keys()) if (!slices.has(slice)) this.#slices.delete(slice);
  }
}
