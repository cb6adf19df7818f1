/**
 * Open-loop HTTP load following a shape (`"ramp 10..100/s over 10s, 100/s for 25s"`, the grammar of
 * `aether load --shape`), round-robin over a cluster's app ports, keeping each answer's start, latency and
 * status: the controller's tests and benchmark drive slices with it. The schedule and the sending are the
 * load generator's own (runtime/loadgen); this only keeps the samples and answers p95 questions about them.
 */

import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { type LoadRun, parseShape, type RequestOutcome, startLoad } from "../../runtime/loadgen/mod.ts";

/** Requests in flight at most (a bound, so an overloaded slice cannot grow the caller's memory). */
export const MAX_CLIENT_IN_FLIGHT = 800;
/** A request waits this long for its answer (an activation from zero holds calls up to 30 s). */
const REQUEST_TIMEOUT_MS = 60_000;

export interface Sample {
  /** When it was sent, ms after the start. */
  at: number;
  ms: number;
  /** The HTTP status; 0 for no answer (refused, reset, timed out). */
  status: number;
}

/** Open-loop load following `shape`, round-robin over the nodes' app ports. */
export class ShapedLoad {
  readonly samples: Sample[] = [];
  /** Requests not sent because MAX_CLIENT_IN_FLIGHT were waiting for answers. */
  refused = 0;
  #run: LoadRun | undefined;
  #startedAt = 0;

  constructor(
    private readonly nodes: NodeProcess[],
    private readonly path: string,
    private readonly shape: string,
  ) {}

  start(): void {
    this.#startedAt = performance.timeOrigin + performance.now();
    this.#run = startLoad({
      target: `GET ${this.path}`,
      urls: this.nodes.map((n) => n.httpUrl),
      shape: parseShape(this.shape),
      concurrency: MAX_CLIENT_IN_FLIGHT,
      timeoutMs: REQUEST_TIMEOUT_MS,
      onOutcome: (outcome) => this.#record(outcome),
    });
  }

  elapsedMs(): number {
    return this.#run ? this.#run.progress().elapsedMs : 0;
  }

  /** Stops sending (the shape may also have ended) and waits for the answers in flight. */
  async stop(): Promise<void> {
    this.#run?.stop();
    await this.#run?.finished;
  }

  /** p95 per 2 s of the run, for a failure's message. */
  timeline(): string {
    const end = Math.max(...this.samples.map((s) => s.at), 0);
    const out: string[] = [];
    for (let t = 0; t < end; t += 2_000) out.push(`${t / 1000}s:${this.p95(t, t + 2_000).toFixed(0)}`);
    return out.join(" ");
  }

  /** p95 (ms) of the answers that started within [fromMs, toMs) of the start. */
  p95(fromMs: number, toMs: number): number {
    const ms = this.samples.filter((s) => s.at >= fromMs && s.at < toMs).map((s) => s.ms).sort((a, b) =>
      a - b
    );
    return ms.length === 0 ? NaN : ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.95))];
  }

  #record(outcome: RequestOutcome): void {
    if (outcome.kind === "dropped") {
      this.refused++;
      return;
    }
    const sentAt = outcome.sentAt!;
    this.samples.push({
      at: sentAt - this.#startedAt,
      ms: outcome.endedAt - sentAt,
      status: outcome.status ?? 0,
    });
  }
}
