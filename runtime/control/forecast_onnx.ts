/**
 * The forecaster's model as an ONNX file, and onnxruntime-web running it.
 *
 * - `writeOnnxModel`: a small protobuf writer of our own for exactly this graph (ModelProto, IR 8, opset 13):
 *   `forecast = Add(MatMul(Relu(Add(MatMul(window, w1), b1)), w2), b2)`, input `window` [N, 60] float, output
 *   `forecast` [N, 5] float, the weights as float initializers in `raw_data` (little-endian).
 * - `readOnnxWeights`: reads those initializers back (the TypeScript fallback runs from the same file).
 * - `OnnxForecaster`: loads onnxruntime-web lazily (wasm, CPU, one thread), on first use. Its `run` is
 *   asynchronous while the controller's tick is not, so each slice's forecast is computed in the background
 *   when its history gains a minute and the latest answer is served; until the first answer, and whenever the
 *   runtime fails to load or run, the TypeScript forward pass answers instead (the cluster works without it).
 */

import { HIDDEN, HORIZON_MINUTES, type MlpWeights, WINDOW_MINUTES } from "./forecast.ts";
import { type Forecast, type Forecaster, forecastFrom, mlpForward } from "./forecast.ts";

/** The committed model, written by `deno task train-forecaster` (forecast_train.ts). */
export const FORECAST_MODEL_URL = new URL("./forecast_model.onnx", import.meta.url);

const FLOAT = 1;

// -- protobuf writing -----------------------------------------------------------------------------------------

class ProtoWriter {
  readonly #bytes: number[] = [];

  #varint(value: number): void {
    let v = BigInt(value);
    while (v >= 0x80n) {
      this.#bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#bytes.push(Number(v));
  }

  #tag(field: number, wire: number): void {
    this.#varint((field << 3) | wire);
  }

  int(field: number, value: number): this {
    this.#tag(field, 0);
    this.#varint(value);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.#tag(field, 2);
    this.#varint(value.length);
    for (const b of value) this.#bytes.push(b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, inner: ProtoWriter): this {
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

function tensor(name: string, dims: number[], data: Float32Array): ProtoWriter {
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  const t = new ProtoWriter();
  for (const d of dims) t.int(1, d);
  return t.int(2, FLOAT).string(8, name).bytes(9, raw);
}

function valueInfo(name: string, dims: (number | string)[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) {
    shape.message(1, typeof d === "number" ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d));
  }
  const tensorType = new ProtoWriter().int(1, FLOAT).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

function node(op: string, inputs: string[], output: string): ProtoWriter {
  const n = new ProtoWriter();
  for (const i of inputs) n.string(1, i);
  return n.string(2, output).string(3, `${op}_${output}`).string(4, op);
}

/** The model as ONNX bytes. */
export function writeOnnxModel(weights: MlpWeights, docString = ""): Uint8Array {
  const graph = new ProtoWriter()
    .message(1, node("MatMul", ["window", "w1"], "h0"))
    .message(1, node("Add", ["h0", "b1"], "h1"))
    .message(1, node("Relu", ["h1"], "h2"))
    .message(1, node("MatMul", ["h2", "w2"], "o0"))
    .message(1, node("Add", ["o0", "b2"], "forecast"))
    .string(2, "aether_forecaster")
    .message(5, tensor("w1", [WINDOW_MINUTES, HIDDEN], weights.w1))
    .message(5, tensor("b1", [HIDDEN], weights.b1))
    .message(5, tensor("w2", [HIDDEN, HORIZON_MINUTES], weights.w2))
    .message(5, tensor("b2", [HORIZON_MINUTES], weights.b2))
    .message(11, valueInfo("window", ["N", WINDOW_MINUTES]))
    .message(12, valueInfo("forecast", ["N", HORIZON_MINUTES]));
  return new ProtoWriter()
    .int(1, 8)
    .string(2, "aether forecast_train.ts")
    .string(3, "1")
    .string(6, docString)
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, "").int(2, 13))
    .finish();
}

// -- protobuf reading (just enough for the initializers) ------------------------------------------------------

interface Field {
  field: number;
  wire: number;
  value: number | Uint8Array;
}

function* fields(bytes: Uint8Array): Generator<Field> {
  let at = 0;
  const varint = () => {
    let result = 0, shift = 0;
    for (;;) {
      if (at >= bytes.length) throw new Error("truncated varint");
      const b = bytes[at++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  };
  while (at < bytes.length) {
    const key = varint();
    const field = Math.floor(key / 8), wire = key % 8;
    if (wire === 0) yield { field, wire, value: varint() };
    else if (wire === 2) {
      const length = varint();
      if (at + length > bytes.length) throw new Error(`field ${field} runs past the end`);
      yield { field, wire, value: bytes.subarray(at, at + length) };
      at += length;
    } else if (wire === 5) at += 4;
    else if (wire === 1) at += 8;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

/** The float initializers of an ONNX model, by name. */
export function readOnnxInitializers(model: Uint8Array): Map<string, { dims: number[]; data: Float32Array }> {
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const m of fields(model)) {
    if (m.field !== 7 || !(m.value instanceof Uint8Array)) continue;
    for (const g of fields(m.value)) {
      if (g.field !== 5 || !(g.value instanceof Uint8Array)) continue;
      let name = "", raw: Uint8Array | undefined;
      const dims: number[] = [];
      for (const t of fields(g.value)) {
        if (t.field === 1 && typeof t.value === "number") dims.push(t.value);
        if (t.field === 8 && t.value instanceof Uint8Array) name = new TextDecoder().decode(t.value);
        if (t.field === 9 && t.value instanceof Uint8Array) raw = t.value;
      }
      if (!raw) continue;
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const data = Float32Array.from({ length: raw.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
      out.set(name, { dims, data });
    }
  }
  return out;
}

/** The MLP's weights from the model file; throws naming the missing or misshapen initializer. */
export function readOnnxWeights(model: Uint8Array): MlpWeights {
  const found = readOnnxInitializers(model);
  const take = (name: string, dims: number[]) => {
    const t = found.get(name);
    if (!t) throw new Error(`forecast model: initializer ${name} is missing`);
    if (t.dims.join("x") !== dims.join("x")) {
      throw new Error(`forecast model: ${name} is ${t.dims.join("x")}, expected ${dims.join("x")}`);
    }
    return t.data;
  };
  return {
    w1: take("w1", [WINDOW_MINUTES, HIDDEN]),
    b1: take("b1", [HIDDEN]),
    w2: take("w2", [HIDDEN, HORIZON_MINUTES]),
    b2: take("b2", [HORIZON_MINUTES]),
  };
}

// -- onnxruntime-web ------------------------------------------------------------------------------------------

/** The part of an onnxruntime-web session used here. */
export interface OnnxSession {
  run(windows: Float32Array, count: number): Promise<Float32Array>;
}

/** Loads onnxruntime-web (wasm, CPU, one thread) and a session for the model bytes. */
export async function loadOnnxSession(model: Uint8Array): Promise<OnnxSession> {
  const ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "error";
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  return {
    async run(windows, count) {
      const input = new ort.Tensor("float32", windows, [count, WINDOW_MINUTES]);
      const result = await session.run({ window: input });
      return result.forecast.data as Float32Array;
    },
  };
}

/** At most this many slices' forecasts are cached (one per slice). */
const MAX_CACHED = 1_000;

/**
 * The ONNX forecaster: onnxruntime-web, loaded on first use; the TypeScript pass while it loads or if it
 * fails. A slice's forecast is recomputed when its history gains a minute.
 */
export class OnnxForecaster implements Forecaster {
  readonly #fallback: MlpWeights;
  readonly #model: Uint8Array;
  readonly #load: (model: Uint8Array) => Promise<OnnxSession>;
  readonly #onError: (error: Error) => void;
  #session: OnnxSession | undefined;
  #loading: Promise<void> | undefined;
  #failed: string | undefined;
  readonly #cache = new Map<string, { key: string; forecast?: Forecast; running: boolean }>();

  constructor(
    model: Uint8Array,
    options: { load?: (model: Uint8Array) => Promise<OnnxSession>; onError?: (error: Error) => void } = {},
  ) {
    this.#model = model;
    this.#fallback = readOnnxWeights(model);
    this.#load = options.load ?? loadOnnxSession;
    this.#onError = options.onError ?? (() => {});
  }

  describe(): string {
    if (this.#failed) return `typescript (onnxruntime-web failed: ${this.#failed})`;
    if (this.#session) return "onnx (onnxruntime-web, wasm, 1 thread)";
    return this.#loading ? "typescript (onnxruntime-web loading)" : "onnx (loads on the leader)";
  }

  /** Loads the runtime now (otherwise on the first forecast); resolves when it is ready or has failed. */
  ready(): Promise<void> {
    this.#loading ??= this.#load(this.#model).then(
      (session) => void (this.#session = session),
      (e) => {
        this.#failed = (e as Error).message;
        this.#onError(e as Error);
      },
    );
    return this.#loading;
  }

  predict(slice: string, minutes: readonly number[]): Forecast | undefined {
    const fallback = forecastFrom(minutes, (x) => mlpForward(this.#fallback, x), "typescript");
    if (!fallback || this.#failed) return fallback;
    void this.ready();
    const key = `${minutes.length}:${minutes[minutes.length - 1]}`;
    let entry = this.#cache.get(slice);
    if (!entry) {
      if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value!);
      entry = { key: "", running: false };
      this.#cache.set(slice, entry);
    }
    if (entry.key !== key && !entry.running && this.#session) this.#refresh(entry, key, minutes);
    return entry.forecast ?? fallback;
  }

  #refresh(
    entry: { key: string; forecast?: Forecast; running: boolean },
    key: string,
    minutes: number[] | readonly number[],
  ) {
    entry.running = true;
    forecastOnnx(this.#session!, minutes).then(
      (forecast) => {
        entry.key = key;
        if (forecast) entry.forecast = forecast;
      },
      (e) => this.#onError(e as Error),
    ).finally(() => (entry.running = false));
  }
}

/** The forecast through onnxruntime-web: the window and the confidence window in one batch of two. */
export async function forecastOnnx(
  session: OnnxSession,
  minutes: readonly number[],
): Promise<Forecast | undefined> {
  // forecastFrom runs the model twice (the forecast and its confidence check): collect both windows, run them
  // as one batch, then replay the answers in the same order.
  const windows: Float32Array[] = [];
  forecastFrom(
    minutes,
    (x) => (windows.push(Float32Array.from(x)), new Float32Array(HORIZON_MINUTES)),
    "onnx",
  );
  if (windows.length === 0) return undefined;
  const batch = new Float32Array(windows.length * WINDOW_MINUTES);
  windows.forEach((w, i) => batch.set(w, i * WINDOW_MINUTES));
  const out = await session.run(batch, windows.length);
  let call = 0;
  return forecastFrom(minutes, () => out.subarray(call * HORIZON_MINUTES, ++call * HORIZON_MINUTES), "onnx");
}
