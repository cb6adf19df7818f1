/**
 * Forge's supervision of one node process: start it, report when it dies (one line with its exit code or
 * signal and how long it ran), and start it again after a short delay unless `--restart never`. A node that
 * keeps dying right after it started is restarted ever later (doubling delays up to a ceiling), so a broken
 * node does not spin; one that ran a while starts again at once. Operator commands (`aether forge kill`,
 * `restart`) go through here so the supervisor knows a death was asked for.
 */

import type { NodeProcess } from "./node_process.ts";

export type RestartPolicy = "always" | "never";

export interface BackoffPolicy {
  /** Delay before the first restart, and after a node that ran at least `stableAfterMs`. */
  initialMs: number;
  /** Ceiling of the doubling delay. */
  maxMs: number;
  /** A node that ran this long before it died is not "dying right after start". */
  stableAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, stableAfterMs: 10_000 };

/**
 * The delay before the next start: the initial one after a first death or a node that ran a while, else
 * double the previous delay (capped).
 */
export function nextRestartDelayMs(
  previousDelayMs: number | null,
  uptimeMs: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): number {
  if (previousDelayMs === null || uptimeMs >= policy.stableAfterMs) return policy.initialMs;
  return Math.min(policy.maxMs, Math.max(policy.initialMs, previousDelayMs * 2));
}

/** `code 1`, `signal SIGKILL`. */
export function describeExit(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

export interface SupervisorOptions {
  restart: RestartPolicy;
  backoff?: BackoffPolicy;
  /** One line for Forge's standard output. */
  report: (line: string) => void;
  /** Called whenever what `snapshot()` returns may have changed. */
  changed: () => void;
  /** The last lines of the node's log, for a failed start. */
  logTail?: () => string;
  /** How long a SIGTERM'd node may take before SIGKILL. */
  stopGraceMs?: number;
}

export interface NodeSnapshot {
  id: string;
  pid: number | null;
  running: boolean;
  restarts: number;
}

type Request = "kill" | "restart" | null;

export class NodeSupervisor {
  restarts = 0;
  /** Reasons the first start failed (Forge stops when a node cannot start at all). */
  #firstStart = Promise.withResolvers<void>();
  #stopping = false;
  #request: Request = null;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #starting = false;

  constructor(readonly node: NodeProcess, readonly options: SupervisorOptions) {
    this.#firstStart.promise.catch(() => {});
  }

  get id(): string {
    return this.node.id;
  }

  /** Ready and serving (not between a death and its restart). */
  get running(): boolean {
    return this.node.ready !== null && !this.#starting;
  }

  snapshot(): NodeSnapshot {
    return {
      id: this.id,
      pid: this.node.process?.pid ?? null,
      running: this.running,
      restarts: this.restarts,
    };
  }

  /** Starts supervising; resolves once the node is ready the first time (rejects if that start fails). */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#firstStart.promise;
  }

  /** SIGKILL, as a crash; the supervisor restarts it (unless `--restart never`). */
  kill(): void {
    if (!this.node.process || !this.running) throw new Error(`${this.id} is not running`);
    this.#request = "kill";
    this.#signal("SIGKILL");
  }

  /** SIGTERM (SIGKILL after the grace period), then a start at once; starts a node that is down. */
  restart(): void {
    this.#request = "restart";
    if (this.node.process) {
      const child = this.node.process;
      this.#signal("SIGTERM");
      const escalate = setTimeout(() => {
        if (this.node.process === child) this.#signal("SIGKILL");
      }, this.options.stopGraceMs ?? 10_000);
      child.status.finally(() => clearTimeout(escalate));
    } else {
      this.#wake?.();
    }
  }

  /** Stops the node for good (SIGTERM, then SIGKILL after the grace period). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.node.stop("SIGTERM", this.options.stopGraceMs ?? 10_000);
    await this.#loop;
  }

  #signal(signal: Deno.Signal): void {
    try {
      this.node.process?.kill(signal);
    } catch {
      // Exited meanwhile: the loop sees it.
    }
  }

  async #run(): Promise<void> {
    let delayMs: number | null = null;
    let first = true;
    while (!this.#stopping) {
      const startedAt = Date.now();
      let exit: string;
      this.#starting = true;
      try {
        await this.node.start();
        this.#starting = false;
        if (first) this.#firstStart.resolve();
        this.options.changed();
        const status = await this.node.exited!;
        exit = `exited (${describeExit(status)})`;
      } catch (e) {
        this.#starting = false;
        exit = `failed to start: ${(e as Error).message.split("\n")[0]}`;
        const tail = this.options.logTail?.();
        if (tail) exit += `\n  last lines of its log:\n${tail.replace(/^/gm, "    ")}`;
        if (first) {
          this.#firstStart.reject(new Error(`${this.id} ${exit}`));
          await this.node.stop("SIGKILL");
          return;
        }
      }
      first = false;
      await this.node.stop("SIGKILL"); // releases the exited child's handles
      this.options.changed();
      if (this.#stopping) return;
      const uptimeMs = Date.now() - startedAt;
      const request = this.#request;
      this.#request = null;
      const ran = `after ${(uptimeMs / 1000).toFixed(1)} s`;
      if (request === "restart") {
        this.options.report(
          `forge: ${this.id} ${exit} ${ran} for aether forge restart; starting it again at once`,
        );
        delayMs = null;
      } else if (this.options.restart === "never") {
        this.options.report(
          `forge: ${this.id} ${exit} ${ran}; not restarted (--restart never): ` +
            `aether forge restart ${this.id} starts it`,
        );
        await new Promise<void>((r) => this.#wake = r);
        this.#wake = null;
        this.#request = null;
      } else {
        delayMs = request === "kill"
          ? (this.options.backoff ?? DEFAULT_BACKOFF).initialMs
          : nextRestartDelayMs(delayMs, uptimeMs, this.options.backoff);
        const what = request === "kill"
          ? `${exit.replace(/^exited/, "was killed")} by aether forge kill`
          : exit;
        this.options.report(
          `forge: ${this.id} ${what} ${ran}; restarting in ${(delayMs / 1000).toFixed(1)} s`,
        );
        await this.#sleep(delayMs);
        this.#request = null; // a restart asked for while it was down is this start
      }
      if (this.#stopping) return;
      this.restarts++;
    }
  }

  /** Waits `ms`, or less when Forge stops or a restart is asked for. */
  async #sleep(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#wake = null;
  }
}
