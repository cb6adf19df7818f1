/**
 * Trains the forecaster's MLP on synthetic traffic and writes it as runtime/control/forecast_model.onnx.
 *
 *   deno task train-forecaster          (deno run --allow-write=runtime/control runtime/control/forecast_train.ts)
 *
 * No pre-trained weights can be downloaded, so the project makes its own: per-minute request rates of many
 * synthetic slices, each with a daily cycle, an hourly cycle, bursts (a few minutes at 1.5–3x) and noise, with
 * its own level and phases. 14 days of them train the model (Adam on mean squared error of the normalized
 * rates); 3 held-out days of other slices (another seed) measure it against two baselines: "repeat the last
 * value" and "same time yesterday". The figures are printed and kept in the model's doc string. Seeded: the
 * same run writes the same file.
 */

import { Rng } from "../core/mod.ts";
import {
  HIDDEN,
  HORIZON_MINUTES,
  mlpForward,
  type MlpWeights,
  normalizeWindow,
  WINDOW_MINUTES,
} from "./forecast.ts";
import { writeOnnxModel } from "./forecast_onnx.ts";

const MINUTES_PER_DAY = 1_440;

/** One slice's synthetic per-minute rates. */
export function syntheticTraffic(rng: Rng, days: number): number[] {
  const level = 20 + rng.next() * 400;
  const dailyPhase = rng.next() * 2 * Math.PI;
  const dailyDepth = 0.3 + rng.next() * 0.5;
  const hourlyDepth = rng.next() * 0.4;
  const hourlyPhase = rng.next() * 2 * Math.PI;
  const noise = 0.02 + rng.next() * 0.08;
  const out: number[] = [];
  let burstLeft = 0, burstFactor = 1;
  for (let t = 0; t < days * MINUTES_PER_DAY; t++) {
    if (burstLeft === 0 && rng.chance(1 / 240)) {
      burstLeft = rng.int(3, 15);
      burstFactor = 1.5 + rng.next() * 1.5;
    }
    const daily = 1 + dailyDepth * Math.sin((2 * Math.PI * t) / MINUTES_PER_DAY + dailyPhase);
    const hourly = 1 + hourlyDepth * Math.sin((2 * Math.PI * t) / 60 + hourlyPhase);
    const burst = burstLeft > 0 ? burstFactor : 1;
    if (burstLeft > 0) burstLeft--;
    out.push(Math.max(0, level * daily * hourly * burst * (1 + noise * (rng.next() * 2 - 1))));
  }
  return out;
}

interface Sample {
  x: Float32Array;
  y: Float32Array;
}

/** Windows and their next HORIZON_MINUTES, normalized by the window's scale, every `stride` minutes. */
export function samplesOf(series: readonly number[], stride: number): Sample[] {
  const out: Sample[] = [];
  for (let t = WINDOW_MINUTES; t + HORIZON_MINUTES <= series.length; t += stride) {
    const { x, scale } = normalizeWindow(series.slice(t - WINDOW_MINUTES, t));
    out.push({ x, y: Float32Array.from(series.slice(t, t + HORIZON_MINUTES), (r) => r / scale) });
  }
  return out;
}

function initialWeights(rng: Rng): MlpWeights {
  const gaussian = () => {
    const u = Math.max(rng.next(), 1e-12), v = rng.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const init = (n: number, fanIn: number) =>
    Float32Array.from({ length: n }, () => gaussian() * Math.sqrt(2 / fanIn));
  return {
    w1: init(WINDOW_MINUTES * HIDDEN, WINDOW_MINUTES),
    b1: new Float32Array(HIDDEN),
    w2: init(HIDDEN * HORIZON_MINUTES, HIDDEN),
    b2: Float32Array.from({ length: HORIZON_MINUTES }, () => 1),
  };
}

/** Adam on mean squared error, mini-batches, a fixed number of epochs. */
export function train(samples: Sample[], rng: Rng, epochs: number): MlpWeights {
  const w = initialWeights(rng);
  const params = [w.w1, w.b1, w.w2, w.b2];
  const m = params.map((p) => new Float32Array(p.length));
  const v = params.map((p) => new Float32Array(p.length));
  const grads = params.map((p) => new Float32Array(p.length));
  const [lr, beta1, beta2, eps, batch] = [0.003, 0.9, 0.999, 1e-8, 64];
  let step = 0;
  const order = samples.map((_, i) => i);
  const hidden = new Float32Array(HIDDEN);
  const pre = new Float32Array(HIDDEN);
  const dHidden = new Float32Array(HIDDEN);
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let start = 0; start < order.length; start += batch) {
      grads.forEach((g) => g.fill(0));
      const end = Math.min(order.length, start + batch);
      for (let b = start; b < end; b++) {
        const { x, y } = samples[order[b]];
        for (let h = 0; h < HIDDEN; h++) {
          let s = w.b1[h];
          for (let i = 0; i < WINDOW_MINUTES; i++) s += x[i] * w.w1[i * HIDDEN + h];
          pre[h] = s;
          hidden[h] = s > 0 ? s : 0;
        }
        dHidden.fill(0);
        for (let k = 0; k < HORIZON_MINUTES; k++) {
          let out = w.b2[k];
          for (let h = 0; h < HIDDEN; h++) out += hidden[h] * w.w2[h * HORIZON_MINUTES + k];
          const d = (2 * (out - y[k])) / HORIZON_MINUTES;
          grads[3][k] += d;
          for (let h = 0; h < HIDDEN; h++) {
            grads[2][h * HORIZON_MINUTES + k] += d * hidden[h];
            dHidden[h] += d * w.w2[h * HORIZON_MINUTES + k];
          }
        }
        for (let h = 0; h < HIDDEN; h++) {
          if (pre[h] <= 0) continue;
          grads[1][h] += dHidden[h];
          for (let i = 0; i < WINDOW_MINUTES; i++) grads[0][i * HIDDEN + h] += dHidden[h] * x[i];
        }
      }
      step++;
      const n = end - start;
      params.forEach((p, pi) => {
        for (let i = 0; i < p.length; i++) {
          const g = grads[pi][i] / n;
          m[pi][i] = beta1 * m[pi][i] + (1 - beta1) * g;
          v[pi][i] = beta2 * v[pi][i] + (1 - beta2) * g * g;
          const mh = m[pi][i] / (1 - beta1 ** step), vh = v[pi][i] / (1 - beta2 ** step);
          p[i] -= (lr * mh) / (Math.sqrt(vh) + eps);
        }
      });
    }
  }
  return w;
}

export interface Evaluation {
  /** Mean absolute error over every horizon, relative to the mean rate (lower is better). */
  model: number;
  repeatLast: number;
  sameTimeYesterday: number;
  windows: number;
}

/** The model and both baselines on held-out series (windows from their second day on, every 7 minutes). */
export function evaluate(weights: MlpWeights, series: readonly number[][]): Evaluation {
  let model = 0, last = 0, yesterday = 0, total = 0, windows = 0;
  for (const s of series) {
    for (let t = MINUTES_PER_DAY; t + HORIZON_MINUTES <= s.length; t += 7) {
      const { x, scale } = normalizeWindow(s.slice(t - WINDOW_MINUTES, t));
      const out = mlpForward(weights, x);
      for (let k = 0; k < HORIZON_MINUTES; k++) {
        const actual = s[t + k];
        model += Math.abs(out[k] * scale - actual);
        last += Math.abs(s[t - 1] - actual);
        yesterday += Math.abs(s[t + k - MINUTES_PER_DAY] - actual);
        total += actual;
      }
      windows++;
    }
  }
  return { model: model / total, repeatLast: last / total, sameTimeYesterday: yesterday / total, windows };
}

export function trainForecaster(seed = 17): { weights: MlpWeights; evaluation: Evaluation } {
  const rng = new Rng(seed);
  const trainSeries = Array.from({ length: 24 }, () => syntheticTraffic(rng.fork(), 14));
  const samples = trainSeries.flatMap((s) => samplesOf(s, 11));
  const weights = train(samples, rng.fork(), 12);
  const heldOut = new Rng(seed + 1_000_003);
  const testSeries = Array.from({ length: 8 }, () => syntheticTraffic(heldOut.fork(), 3));
  return { weights, evaluation: evaluate(weights, testSeries) };
}

function percent(n: number): string {
  return `${(n * 100).toFixed(1)}%`;
}

if (import.meta.main) {
  const started = performance.now();
  const { weights, evaluation } = trainForecaster();
  const figures = `held-out synthetic days, mean absolute error over 1..${HORIZON_MINUTES} min ahead, ` +
    `relative to the mean rate (${evaluation.windows} windows): model ${percent(evaluation.model)}, ` +
    `repeat last value ${percent(evaluation.repeatLast)}, same time yesterday ` +
    `${percent(evaluation.sameTimeYesterday)}`;
  const bytes = writeOnnxModel(weights, figures);
  const path = new URL("./forecast_model.onnx", import.meta.url);
  Deno.writeFileSync(path, bytes);
  console.log(figures);
  console.log(
    `wrote ${path.pathname} (${bytes.length} bytes) in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s`,
  );
}
