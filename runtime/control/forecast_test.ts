import assert from "node:assert/strict";
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
import { Rng } from "../core/mod.ts";
import {
  HIDDEN,
  HORIZON_MINUTES,
  mlpForward,
  normalizeWindow,
  RateHistory,
  TsForecaster,
  WINDOW_MINUTES,
} from "./forecast.ts";
import {
  FORECAST_MODEL_URL,
  forecastOnnx,
  loadOnnxSession,
  OnnxForecaster,
  readOnnxWeights,
  writeOnnxModel,
} from "./forecast_onnx.ts";
import { evaluate, syntheticTraffic, trainForecaster } from "./forecast_train.ts";
import { DEFAULT_CONTROLLER_SIM_OPTIONS, runControllerSimulation } from "./sim/simulator.ts";

const modelBytes = Deno.readFileSync(FORECAST_MODEL_URL);
const weights = readOnnxWeights(modelBytes);

/** Held-out style series: another seed than training's. */
function series(seed: number, days: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: 4 }, () => syntheticTraffic(rng.fork(), days));
}

Deno.test("forecast model: the committed file decodes with the ONNX protobuf reader (graph, weights, opset)", () => {
  const model = onnx.ModelProto.decode(modelBytes);
  assert.equal(Number(model.irVersion), 8);
  assert.deepEqual(model.opsetImport.map((o) => Number(o.version)), [13]);
  const graph = model.graph!;
  assert.deepEqual((graph.node ?? []).map((n) => n.opType), ["MatMul", "Add", "Relu", "MatMul", "Add"]);
  assert.deepEqual((graph.input ?? []).map((i) => i.name), ["window"]);
  assert.deepEqual((graph.output ?? []).map((o) => o.name), ["forecast"]);
  const dims = Object.fromEntries((graph.initializer ?? []).map((t) => [t.name, (t.dims ?? []).map(Number)]));
  assert.deepEqual(dims, {
    w1: [WINDOW_MINUTES, HIDDEN],
    b1: [HIDDEN],
    w2: [HIDDEN, HORIZON_MINUTES],
    b2: [HORIZON_MINUTES],
  });
  const w1 = (graph.initializer ?? []).find((t) => t.name === "w1")!;
  const raw = w1.rawData!;
  assert.equal(new DataView(raw.buffer, raw.byteOffset).getFloat32(0, true), weights.w1[0]);
  assert.match(model.docString ?? "", /repeat last value/);
});

Deno.test("forecast model: the writer and reader round-trip the weights", () => {
  const again = readOnnxWeights(writeOnnxModel(weights));
  assert.deepEqual(again, weights);
  assert.throws(() => readOnnxWeights(modelBytes.subarray(0, 100)), /truncated|past the end|missing/);
});

Deno.test("forecast model: deno task train-forecaster makes exactly the committed file", () => {
  const { weights: trained, evaluation } = trainForecaster();
  const doc = onnx.ModelProto.decode(modelBytes).docString ?? "";
  assert.deepEqual(trained, weights, "retrain with: deno task train-forecaster");
  console.log(doc);
  assert.ok(evaluation.model < evaluation.repeatLast, doc);
  assert.ok(evaluation.model < evaluation.sameTimeYesterday, doc);
});

Deno.test("forecast model: beats 'repeat last value' and 'same time yesterday' on other held-out days", () => {
  const e = evaluate(weights, series(99, 3));
  console.log(
    `other held-out days: model ${(e.model * 100).toFixed(1)}%, repeat last ${
      (e.repeatLast * 100).toFixed(1)
    }%, ` +
      `same time yesterday ${(e.sameTimeYesterday * 100).toFixed(1)}% (${e.windows} windows)`,
  );
  assert.ok(e.model < e.repeatLast && e.model < e.sameTimeYesterday);
});

Deno.test("forecast: onnxruntime-web's outputs equal the TypeScript forward pass", async () => {
  const session = await loadOnnxSession(modelBytes);
  const rng = new Rng(5);
  const [traffic] = series(7, 1);
  const windows: Float32Array[] = [];
  for (let i = 0; i < 16; i++) {
    const at = rng.int(WINDOW_MINUTES, traffic.length);
    windows.push(normalizeWindow(traffic.slice(at - WINDOW_MINUTES, at)).x);
  }
  const batch = new Float32Array(windows.length * WINDOW_MINUTES);
  windows.forEach((w, i) => batch.set(w, i * WINDOW_MINUTES));
  const out = await session.run(batch, windows.length);
  windows.forEach((w, i) => {
    const ts = mlpForward(weights, w);
    for (let k = 0; k < HORIZON_MINUTES; k++) {
      const onnxValue = out[i * HORIZON_MINUTES + k];
      assert.ok(Math.abs(onnxValue - ts[k]) < 1e-4, `window ${i} minute ${k + 1}: ${onnxValue} vs ${ts[k]}`);
    }
  });
  const minutes = traffic.slice(0, 90);
  const viaOnnx = await forecastOnnx(session, minutes);
  const viaTs = new TsForecaster(weights).predict("s", minutes);
  assert.ok(viaOnnx && viaTs);
  assert.ok(Math.abs(viaOnnx.requestsPerSecond - viaTs.requestsPerSecond) < 1e-3 * viaTs.requestsPerSecond);
  assert.ok(Math.abs(viaOnnx.confidence - viaTs.confidence) < 1e-3);
});

Deno.test("forecast: the ONNX forecaster answers with the TypeScript pass until the runtime is up, and after it fails", async () => {
  const failing = new OnnxForecaster(modelBytes, { load: () => Promise.reject(new Error("no wasm here")) });
  const minutes = series(3, 1)[0].slice(0, 60);
  assert.equal(failing.predict("s", minutes)?.model, "typescript");
  await failing.ready();
  assert.match(failing.describe(), /no wasm here/);
  assert.equal(failing.predict("s", minutes)?.model, "typescript");
  const real = new OnnxForecaster(modelBytes);
  await real.ready();
  real.predict("s", minutes);
  // The first ONNX answer arrives in the background.
  for (let i = 0; i < 100 && real.predict("s", minutes)?.model !== "onnx"; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(real.predict("s", minutes)?.model, "onnx");
  assert.equal(
    real.predict("s", minutes.slice(0, 5)),
    undefined,
    "no forecast without 15 minutes of history",
  );
});

Deno.test("forecast: per-minute history is bounded to the last hour", () => {
  const h = new RateHistory();
  for (let t = 0; t < 3 * 3_600_000; t += 1_000) h.add("a", t, t / 60_000);
  assert.equal(h.minutes("a").length, WINDOW_MINUTES);
  h.retain(new Set());
  assert.deepEqual(h.slices(), []);
});

Deno.test("forecast: on a cyclic load the forecaster leaves fewer seconds over the objective than the tree alone", () => {
  // A 10-minute cycle with instances that take a minute to start: the decision tree alone reacts late.
  let alone = 0, withForecast = 0, instancesAlone = 0, instancesWith = 0, least = 0;
  for (let seed = 1; seed <= 5; seed++) {
    const options = {
      ...DEFAULT_CONTROLLER_SIM_OPTIONS,
      seed,
      shape: "cycle" as const,
      durationMs: 3 * 3_600_000,
      nodeFailuresPerHour: 0,
      leaderChangesPerHour: 0,
      startDelayMs: 60_000,
      cyclePeriodMs: 10 * 60_000,
      measureFromMs: 3_600_000,
    };
    const a = runControllerSimulation(options);
    const b = runControllerSimulation({ ...options, forecaster: new TsForecaster(weights) });
    assert.deepEqual(b.failures, []);
    alone += a.secondsOverObjective;
    withForecast += b.secondsOverObjective;
    instancesAlone += a.instanceSeconds;
    instancesWith += b.instanceSeconds;
    least += a.minimumInstanceSeconds;
  }
  console.log(
    `cyclic load, 5 seeds x 2 measured hours: seconds over the p95 objective ${alone} (decision tree alone) vs ` +
      `${withForecast} (with the forecaster); instance-seconds ${instancesAlone} vs ${instancesWith} ` +
      `(least that meets the objective: ${least})`,
  );
  assert.ok(withForecast < alone);
});
