/**
 * Delivery of alerts from the leader to the outside: Alertmanager through its v2 API (`POST
 * {url}/api/v2/alerts`, the same alerts re-sent every RESEND_EVERY_MS while they fire, as Prometheus does, with
 * `endsAt` a few re-sends ahead so Alertmanager resolves them by itself if the cluster goes silent; resolved
 * ones with `endsAt` = when they resolved), and generic webhooks (`POST url` with a JSON document per
 * transition). Each target has its own bounded FIFO and one request in flight; a failed request is retried
 * with exponential backoff (MAX_ATTEMPTS in all), except a 4xx other than 408/429 (the payload will not get
 * better). Beyond MAX_QUEUED_DELIVERIES the oldest waiting one is dropped and counted.
 */

import type { Logger } from "../core/mod.ts";
import type { AlertChange, AlertView } from "./alerts.ts";

export const RESEND_EVERY_MS = 30_000;
export const MAX_QUEUED_DELIVERIES = 1_000;
export const MAX_ATTEMPTS = 5;
export const FIRST_RETRY_MS = 250;
export const MAX_RETRY_MS = 5_000;
export const DELIVERY_TIMEOUT_MS = 10_000;

export interface AlertDeliveryOptions {
  /** Alertmanager base URLs (`http://127.0.0.1:9093`). */
  alertmanagers: readonly string[];
  /** Webhook URLs, each called with every transition. */
  webhooks: readonly string[];
  log: Logger;
  /** The cluster's name for the `cluster` label. */
  cluster?: string;
  /** Where `generatorURL` points (the node's API, for people following a link from Alertmanager). */
  generatorUrl?: string;
  firstRetryMs?: number;
}

export interface DeliveryTargetStats {
  url: string;
  kind: "alertmanager" | "webhook";
  queued: number;
  sent: number;
  retried: number;
  failed: number;
  dropped: number;
  lastError?: string;
}

/** An alert in Alertmanager's v2 `postableAlert` shape. */
export interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  generatorURL?: string;
}

/** The labels that name an alert (Alertmanager groups and deduplicates by them). */
export function alertLabels(alert: AlertView, cluster: string): Record<string, string> {
  const labels: Record<string, string> = { alertname: alert.rule, severity: alert.severity, cluster };
  if (alert.node !== undefined) labels.node = alert.node;
  return labels;
}

/** An alert for Alertmanager: firing (`endsAt` a few re-sends ahead) or resolved at `resolvedAt`. */
export function postableAlert(
  alert: AlertView,
  options: { cluster: string; nowMs: number; resolvedAt?: number; generatorUrl?: string },
): PostableAlert {
  const annotations: Record<string, string> = {
    summary: alert.summary ?? alert.expr,
    expr: alert.expr,
    threshold: String(alert.threshold),
  };
  if (alert.value !== undefined) annotations.value = String(alert.value);
  const startsAt = new Date(alert.firedAt ?? alert.activeSince).toISOString();
  const endsAt = new Date(options.resolvedAt ?? options.nowMs + 4 * RESEND_EVERY_MS).toISOString();
  const postable: PostableAlert = {
    labels: alertLabels(alert, options.cluster),
    annotations,
    startsAt,
    endsAt,
  };
  if (options.generatorUrl) postable.generatorURL = options.generatorUrl;
  return postable;
}

interface Delivery {
  body: string;
  attempts: number;
}

/** One target: a bounded FIFO, one request in flight, retries with backoff. */
class Target {
  readonly stats: DeliveryTargetStats;
  readonly #queue: Delivery[] = [];
  #busy = false;
  #stopped = false;
  #retryTimer?: ReturnType<typeof setTimeout>;
  #inFlight?: AbortController;

  constructor(
    readonly url: string,
    kind: "alertmanager" | "webhook",
    readonly endpoint: string,
    readonly log: Logger,
    readonly firstRetryMs: number,
  ) {
    this.stats = { url, kind, queued: 0, sent: 0, retried: 0, failed: 0, dropped: 0 };
  }

  enqueue(body: string): void {
    if (this.#stopped) return;
    if (this.#queue.length >= MAX_QUEUED_DELIVERIES) {
      this.#queue.shift();
      this.stats.dropped++;
    }
    this.#queue.push({ body, attempts: 0 });
    this.stats.queued = this.#queue.length;
    this.#pump();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#inFlight?.abort();
  }

  async #pump(): Promise<void> {
    if (this.#busy || this.#stopped) return;
    const next = this.#queue[0];
    if (!next) return;
    this.#busy = true;
    next.attempts++;
    const outcome = await this.#send(next.body);
    this.#busy = false;
    if (this.#stopped) return;
    if (outcome === "ok" || outcome === "give-up" || next.attempts >= MAX_ATTEMPTS) {
      this.#queue.shift();
      this.stats.queued = this.#queue.length;
      if (outcome === "ok") this.stats.sent++;
      else {
        this.stats.failed++;
        this.log.warn("alert delivery failed", {
          url: this.url,
          attempts: next.attempts,
          error: this.stats.lastError,
        });
      }
      this.#pump();
      return;
    }
    this.stats.retried++;
    const delay = Math.min(MAX_RETRY_MS, this.firstRetryMs * 2 ** (next.attempts - 1));
    this.#retryTimer = setTimeout(() => this.#pump(), delay);
  }

  async #send(body: string): Promise<"ok" | "retry" | "give-up"> {
    this.#inFlight = new AbortController();
    const timer = setTimeout(() => this.#inFlight?.abort(), DELIVERY_TIMEOUT_MS);
    try {
      const response = await fetch(this.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: this.#inFlight.signal,
      });
      const text = await response.text().catch(() => "");
      if (response.ok) return "ok";
      this.stats.lastError = `HTTP ${response.status}: ${text.slice(0, 200)}`;
      const permanent = response.status >= 400 && response.status < 500 && response.status !== 408 &&
        response.status !== 429;
      return permanent ? "give-up" : "retry";
    } catch (e) {
      this.stats.lastError = (e as Error).message;
      return "retry";
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Sends the leader's alert transitions to every configured Alertmanager and webhook (see the file header). */
export class AlertDelivery {
  readonly #o: AlertDeliveryOptions;
  readonly #cluster: string;
  readonly #alertmanagers: Target[];
  readonly #webhooks: Target[];

  constructor(options: AlertDeliveryOptions) {
    this.#o = options;
    this.#cluster = options.cluster ?? "aether";
    const retry = options.firstRetryMs ?? FIRST_RETRY_MS;
    this.#alertmanagers = options.alertmanagers.map((url) =>
      new Target(url, "alertmanager", `${url.replace(/\/+$/, "")}/api/v2/alerts`, options.log, retry)
    );
    this.#webhooks = options.webhooks.map((url) => new Target(url, "webhook", url, options.log, retry));
  }

  get enabled(): boolean {
    return this.#alertmanagers.length + this.#webhooks.length > 0;
  }

  /** The transitions of one evaluation: firing and resolved go out (pending and cleared stay inside). */
  deliver(changes: readonly AlertChange[], nowMs: number): void {
    const outgoing = changes.filter((c) => c.transition === "firing" || c.transition === "resolved");
    if (outgoing.length === 0) return;
    if (this.#alertmanagers.length > 0) {
      const alerts = outgoing.map((c) =>
        postableAlert(c.alert, {
          cluster: this.#cluster,
          nowMs,
          resolvedAt: c.transition === "resolved" ? c.atMs : undefined,
          generatorUrl: this.#o.generatorUrl,
        })
      );
      const body = JSON.stringify(alerts);
      for (const target of this.#alertmanagers) target.enqueue(body);
    }
    for (const change of outgoing) {
      const body = JSON.stringify(this.#webhookDocument(change, nowMs));
      for (const target of this.#webhooks) target.enqueue(body);
    }
  }

  /** Re-sends every firing alert to the Alertmanagers (so they know the alerts still fire). */
  resend(firing: readonly AlertView[], nowMs: number): void {
    if (this.#alertmanagers.length === 0 || firing.length === 0) return;
    const body = JSON.stringify(
      firing.map((alert) =>
        postableAlert(alert, { cluster: this.#cluster, nowMs, generatorUrl: this.#o.generatorUrl })
      ),
    );
    for (const target of this.#alertmanagers) target.enqueue(body);
  }

  stats(): DeliveryTargetStats[] {
    return [...this.#alertmanagers, ...this.#webhooks].map((t) => ({ ...t.stats }));
  }

  stop(): void {
    for (const target of [...this.#alertmanagers, ...this.#webhooks]) target.stop();
  }

  #webhookDocument(change: AlertChange, nowMs: number) {
    return {
      version: "1",
      source: "aether",
      cluster: this.#cluster,
      status: change.transition,
      alert: {
        ...change.alert,
        ...postableAlert(change.alert, {
          cluster: this.#cluster,
          nowMs,
          resolvedAt: change.transition === "resolved" ? change.atMs : undefined,
        }),
      },
      sentAt: new Date(nowMs).toISOString(),
    };
  }
}
