/**
 * Open-loop HTTP load at a rate that follows a shape (requests a second as a function of time), round-robin
 * over a cluster's app ports, recording each answer's start, latency and status: the controller's tests and
 * benchmark drive slices with it.
 */

import type { NodeProcess } from "../../runtime/forge/mod.ts";

/** Requests in flight at most (a bound, so an overloaded slice cannot grow the caller's memory). */
export const MAX_CLIENT_IN_FLIGHT = 800;

export interface Sample {
  at: number;
  ms: number;
  status: number;
}

/** Open-loop load at `rate(t)` requests a second (t in ms since start), round-robin over the nodes. */
export class ShapedLoad {
  readonly samples: Sample[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #sent = 0;
  #startedAt = 0;
  refused = 0;

  constructor(
    private readonly nodes: NodeProcess[],
    private readonly path: string,
    private readonly rate: (t: number) => number,
  ) {}

  start(): void {
    this.#startedAt = performance.now();
    let due = 0, last = this.#startedAt;
    this.#timer = setInterval(() => {
      const now = performance.now();
      due += (this.rate(now - this.#startedAt) * (now - last)) / 1000;
      last = now;
      for (; due >= 1; due--) {
        if (this.#inFlight.size >= MAX_CLIENT_IN_FLIGHT) {
          this.refused++;
          continue;
        }
        const node = this.nodes[this.#sent++ % this.nodes.length];
        const p = this.#one(node).finally(() => this.#inFlight.delete(p));
        this.#inFlight.add(p);
      }
    }, 10);
  }

  elapsedMs(): number {
    return performance.now() - this.#startedAt;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
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

  async #one(node: NodeProcess): Promise<void> {
    const at = this.elapsedMs();
    const started = performance.now();
    let status = 0;
    try {
      const response = await fetch(`${node.httpUrl}${this.path}`);
      await response.body?.cancel();
      status = response.status;
    } catch {
      status = 0;
    }
    this.samples.push({ at, ms: performance.now() - started, status });
  }
}
