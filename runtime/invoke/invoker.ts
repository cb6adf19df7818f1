/**
 * SliceInvoker: calls a slice method by name, wherever an instance of it runs.
 *
 * For each call it: fixes the deadline (the caller's, else the slice's configured timeout, else 30 s; a
 * slice's configured timeout also caps what callers ask for), then per attempt looks up the live endpoints
 * (EndpointRegistry, filtered by what the mesh sees connected), picks one (selection.ts: version range,
 * version weights, local first, round-robin, an instance not tried yet), and runs the call through the local
 * executor or over the mesh (remote.ts). A failure is retried by the rules of retry.ts; the slice's own
 * errors are answers and come back as outcomes. The request id and traceparent travel with every attempt and
 * hop, and the node's own log lines about a call carry the request id.
 *
 * The local executor is only reached through `LocalExecutor`, and endpoints through `EndpointSource`, so the
 * invoker runs against the real SliceExecutor and EndpointRegistry in the node and in tests alike.
 */

import {
  AetherError,
  isTraceparent,
  type Logger,
  type MetricsRecorder,
  newTraceparent,
  type NodeId,
  parseArtifactBase,
  parseCoordinates,
  randomHexId,
} from "../core/mod.ts";
import type { InvokeOptions, InvokeOutcome, OutboundCall } from "../sandbox/mod.ts";
import { type Endpoint, EndpointSelector } from "./selection.ts";
import { asInvokeFailure, failureKindOf, InvokeFailure } from "./failure.ts";
import {
  DEFAULT_RETRY_POLICY,
  type FailureKind,
  isCrash,
  retryDecision,
  retryDelayMs,
  type RetryPolicy,
} from "./retry.ts";
import {
  type FlowLimits,
  type InvokeMesh,
  RemoteCalls,
  type RemoteStats,
  type ServedCall,
} from "./remote.ts";
import type { VersionWeightsRecord } from "./weights.ts";
import { spanClockMs, type SpanRecord, type SpanSink, withSpanId } from "./spans.ts";

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;
/** The longest deadline a call may ask for. */
export const MAX_CALL_TIMEOUT_MS = 15 * 60_000;
/**
 * Slice runs (attempts and served calls on local instances) whose span this node keeps, to link the calls a
 * slice makes to their parent: one entry per run in flight, so the sandbox's own limits bound it; past this,
 * such calls are recorded without a parent (the trace still has them, by request id).
 */
export const MAX_TRACED_RUNS = 65_536;

/**
 * The local sandbox side (runtime/sandbox's SliceExecutor has it). `invoke` refuses an instance that is not
 * ACTIVE with a 503 carrying `extra.state` (see failure.ts): the request path asks that question there only.
 */
export interface LocalExecutor {
  invoke(
    instanceId: string,
    method: string,
    request: unknown,
    options?: InvokeOptions,
  ): Promise<InvokeOutcome>;
}

/** Live endpoints by slice and method (runtime/deployment's EndpointRegistry has it). */
export interface EndpointSource {
  lookup(slice: string, method: string, isConnected?: (node: NodeId) => boolean): Endpoint[];
  /**
   * The methods `slice` (`group:artifact` or `group:artifact:version`) has endpoints for. With it (and
   * `revision`), a call to a method the slice does not have is refused at once with a 404 that names the
   * methods it has, instead of being retried as "no live instance".
   */
  methods?(slice: string): string[];
  /** Changes whenever the endpoints do (the registry's applied KV revision). */
  readonly revision?: number;
}

export interface SliceInvokerOptions {
  self: NodeId;
  mesh: InvokeMesh;
  endpoints: EndpointSource;
  executor: LocalExecutor;
  /** The version weights of a slice (`group:artifact`), from `routing/` records. */
  routing?: (slice: string) => VersionWeightsRecord | undefined;
  /** The configured call timeout of a slice (`group:artifact`), if any. */
  sliceTimeoutMs?: (slice: string) => number | undefined;
  log: Logger;
  retry?: Partial<RetryPolicy>;
  flow?: Partial<FlowLimits>;
  defaultTimeoutMs?: number;
  /** The executor's instance id of an endpoint; default `group:artifact:version/n` (the deployment's ids). */
  instanceIdOf?: (endpoint: Endpoint) => string;
  now?: () => number;
  /** Where each call, attempt and served call is recorded as a span (spans.ts); none: no tracing cost. */
  spans?: SpanSink;
  /**
   * Where the calls this node's instances run are recorded (calls, errors by kind, in-flight, latency per
   * slice version and method), for local and remote callers alike. Absent: nothing is recorded.
   */
  metrics?: MetricsRecorder;
  /**
   * Scale to zero: called once per call when no live instance serves it, before that counts as a failed
   * attempt. Resolves true once an instance serves the slice (the call selects again), false when the slice is
   * not scaled to zero (the usual `no_instance` handling); rejects (503 with retry-after) when too many calls
   * are held already or no instance came up in time.
   */
  activate?: (slice: string, deadlineMs: number) => Promise<boolean>;
}

/** Node-wide call defaults that may change while the node runs (SliceInvoker.setDefaults). */
export interface LiveCallDefaults {
  defaultTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  flow?: Partial<FlowLimits>;
}

/** What to call: `"group:artifact"` (any version), `"group:artifact:version"`, or with a version range. */
export interface CallTarget {
  artifact: string;
  /** Accept only versions in this range (a slice's `calls` entry), e.g. `^1.0.0`. */
  range?: string;
}

export interface CallOptions {
  /** Absolute deadline, epoch milliseconds. */
  deadlineMs?: number;
  /** Relative deadline; the earlier of this and `deadlineMs` applies. */
  timeoutMs?: number;
  /** Propagated to every hop and log line; generated when absent or malformed. */
  requestId?: string;
  /** W3C trace context; a new trace starts when absent or malformed. */
  traceparent?: string;
  /** Resolve at once; deliver in the background (with the same retries), log a final failure. */
  fireAndForget?: boolean;
  /** Retry failures whose outcome is unknown (default true: slice methods are idempotent by contract). */
  idempotent?: boolean;
  /** Who calls (for log lines): a slice's coordinates, "http", "api". */
  from?: string;
  /** A traceparent naming the span this call is a child of (the HTTP router's), when spans are recorded. */
  parentTraceparent?: string;
  /**
   * The calling slice's coordinates as its sandbox host took them from the caller's manifest (set by
   * `outboundHandler` only): the callee reads it as `ctx.caller` (infrastructure services scope keys by it).
   */
  caller?: string;
}

export interface InvokerStats {
  calls: number;
  local: number;
  remote: number;
  retries: number;
  failed: Record<string, number>;
  remoteCalls: RemoteStats;
}

interface ParsedTarget {
  slice: string;
  version?: string;
}

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** A request id as accepted from outside (header `x-request-id`): 1-128 URL-safe characters. */
export function isRequestId(value: unknown): value is string {
  return typeof value === "string" && REQUEST_ID.test(value);
}

/** 16 random hex digits. */
export function newRequestId(): string {
  return randomHexId(8);
}

export class SliceInvoker {
  readonly self: NodeId;
  readonly remote: RemoteCalls;
  readonly #options: SliceInvokerOptions;
  readonly #mesh: InvokeMesh;
  readonly #log: Logger;
  #policy: RetryPolicy;
  readonly #selector: EndpointSelector;
  #defaultTimeoutMs: number;
  readonly #instanceIdOf: (endpoint: Endpoint) => string;
  readonly #now: () => number;
  readonly #live: (node: NodeId) => boolean;
  readonly #targets = new Map<string, ParsedTarget>();
  /** Coordinates by executor instance id (for the metrics recorder); cleared past 10,000. */
  readonly #coordinates = new Map<string, string>();
  /** Methods per slice name as of an endpoints revision (see #unknownMethod). */
  readonly #knownMethods = new Map<string, { revision: number; methods: ReadonlySet<string> }>();
  readonly #counters = { calls: 0, local: 0, remote: 0, retries: 0 };
  readonly #failed = new Map<string, number>();
  readonly #sleeping = new Set<{ timer: ReturnType<typeof setTimeout>; wake(): void }>();
  readonly #spans: SpanSink | undefined;
  /** The slice runs in flight here (attempts on local instances, served calls), by request id. */
  readonly #runs = new Map<string, Run>();
  #runCount = 0;
  #closed = false;

  constructor(options: SliceInvokerOptions) {
    this.self = options.self;
    this.#options = options;
    this.#mesh = options.mesh;
    this.#log = options.log;
    this.#policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.#selector = new EndpointSelector(options.self);
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.#instanceIdOf = options.instanceIdOf ?? ((e) => `${e.artifact}/${e.n}`);
    this.#now = options.now ?? Date.now;
    this.#live = (node) => node === this.self || this.#mesh.isConnected(node);
    this.#spans = options.spans;
    this.remote = new RemoteCalls({
      self: options.self,
      mesh: options.mesh,
      serve: (call) => this.#serve(call),
      log: options.log,
      limits: options.flow,
      now: this.#now,
    });
  }

  /**
   * Changes this node's call defaults live (the node settings `invoke.*`, runtime/infra-host/config.ts): the
   * next call uses them; calls in flight keep the deadline and policy they started with.
   */
  setDefaults(defaults: LiveCallDefaults): void {
    if (defaults.defaultTimeoutMs !== undefined) this.#defaultTimeoutMs = defaults.defaultTimeoutMs;
    if (defaults.retry) this.#policy = { ...this.#policy, ...defaults.retry };
    if (defaults.flow) this.remote.setLimits(defaults.flow);
  }

  /** The call defaults in force (what `setDefaults` changed, else the options'). */
  defaults(): { defaultTimeoutMs: number; retry: RetryPolicy; flow: FlowLimits } {
    return {
      defaultTimeoutMs: this.#defaultTimeoutMs,
      retry: { ...this.#policy },
      flow: this.remote.limits(),
    };
  }

  /**
   * Calls `method` of the slice `target` with `request`. Resolves with the method's outcome: its value (with
   * the status and headers it chose) or the error it threw (with its HTTP status from the slice's mapping).
   * Rejects with an AetherError when the call could not be made: 503 no live instance or every attempt
   * failed, 504 deadline, 400/404/413 a request no instance can take.
   */
  invoke(
    target: string | CallTarget,
    method: string,
    request: unknown,
    options: CallOptions = {},
  ): Promise<InvokeOutcome> {
    let parsed: ParsedTarget;
    try {
      parsed = this.#target(typeof target === "string" ? target : target.artifact);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#closed) {
      return Promise.reject(
        new AetherError("unavailable", `node ${this.self} is stopping; cannot call ${parsed.slice}`),
      );
    }
    const unknown = this.#unknownMethod(parsed, method);
    if (unknown) return Promise.reject(unknown);
    const range = typeof target === "string" ? undefined : target.range;
    const call: Call = {
      slice: parsed.slice,
      version: parsed.version,
      range,
      method,
      request,
      requestId: isRequestId(options.requestId) ? options.requestId : newRequestId(),
      traceparent: isTraceparent(options.traceparent) ? options.traceparent : newTraceparent(),
      deadlineMs: this.#deadline(parsed.slice, options),
      fireAndForget: options.fireAndForget === true,
      idempotent: options.idempotent ?? true,
      startedAt: this.#now(),
      spanStartMs: this.#spans ? spanClockMs() : 0,
      parentTraceparent: options.parentTraceparent,
      ...(options.caller === undefined ? {} : { caller: options.caller }),
    };
    this.#counters.calls++;
    if (!call.fireAndForget) return this.#attempts(call);
    this.#attempts(call).then(
      (outcome) => {
        if (!outcome.ok) {
          this.#log.warn("fire-and-forget call ended with the slice's error", {
            requestId: call.requestId,
            slice: call.slice,
            method,
            error: `${outcome.error.name}: ${outcome.error.message}`,
          });
        }
      },
      (e) =>
        this.#log.warn("fire-and-forget call failed", {
          requestId: call.requestId,
          slice: call.slice,
          method,
          from: options.from,
          error: (e as Error).message,
        }),
    );
    return Promise.resolve({ ok: true, value: null });
  }

  /**
   * The handler the local executor gives the calls its slices make (`onOutboundCall`); `options.idempotent`
   * false: no retry after an unknown outcome (an infrastructure service call with effects).
   */
  readonly outboundHandler = (
    call: OutboundCall,
    options?: { idempotent?: boolean },
  ): Promise<InvokeOutcome> =>
    this.invoke({ artifact: call.target.artifact, range: call.target.range }, call.method, call.payload, {
      deadlineMs: call.deadlineMs,
      requestId: call.requestId,
      traceparent: call.traceparent,
      fireAndForget: call.fireAndForget,
      from: call.from,
      caller: call.from,
      ...(options?.idempotent === undefined ? {} : { idempotent: options.idempotent }),
      // The calling slice's run: the attempt or served call that runs it here (MAX_TRACED_RUNS).
      parentTraceparent: this.#spans ? this.#runOf(call.requestId, call.instanceId) : undefined,
    });

  stats(): InvokerStats {
    return {
      ...this.#counters,
      failed: Object.fromEntries(this.#failed),
      remoteCalls: this.remote.stats(),
    };
  }

  /** Stops: new calls are refused, waiting retries end, calls in flight to other nodes fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const sleeper of this.#sleeping) {
      clearTimeout(sleeper.timer);
      sleeper.wake();
    }
    this.remote.close();
  }

  // -------------------------------------------------------------------------------------------------------

  #target(text: string): ParsedTarget {
    let parsed = this.#targets.get(text);
    if (parsed) return parsed;
    const parts = typeof text === "string" ? text.split(":") : [];
    if (parts.length === 3) {
      const c = parseCoordinates(text, "call target");
      parsed = { slice: `${c.group}:${c.artifact}`, version: c.version };
    } else {
      const b = parseArtifactBase(text, "call target");
      parsed = { slice: `${b.group}:${b.artifact}` };
    }
    if (this.#targets.size > 10_000) this.#targets.clear();
    this.#targets.set(text, parsed);
    return parsed;
  }

  /**
   * A 404 when the slice has endpoints but none for `method` (a typo, `__proto__`): every instance of a slice
   * version registers all its methods at once, so retrying cannot help. Undefined when the method is known,
   * or the slice has no endpoints at all (not deployed yet, or every instance down: "no live instance" and
   * retries stay right). The method names are kept in a Set, never used to index an object.
   */
  #unknownMethod(target: ParsedTarget, method: string): AetherError | undefined {
    const endpoints = this.#options.endpoints;
    if (typeof endpoints.methods !== "function" || typeof endpoints.revision !== "number") return undefined;
    const name = target.version ? `${target.slice}:${target.version}` : target.slice;
    let known = this.#knownMethods.get(name);
    // A method seen before passes without a rescan, however many KV writes came since: if its endpoints have
    // gone, the selection's "no live instance" is the right answer anyway. Only a miss rescans.
    if (known && typeof method === "string" && known.methods.has(method)) return undefined;
    if (!known || known.revision !== endpoints.revision) {
      if (this.#knownMethods.size > 10_000) this.#knownMethods.clear();
      known = { revision: endpoints.revision, methods: new Set(endpoints.methods(name)) };
      this.#knownMethods.set(name, known);
    }
    if (known.methods.size === 0 || (typeof method === "string" && known.methods.has(method))) {
      return undefined;
    }
    const shown = typeof method === "string" ? method.slice(0, 128) : String(method);
    return new AetherError(
      "not_found",
      `${name} has no method "${shown}"; its methods are ${[...known.methods].join(", ")}`,
      { slice: target.slice, method: shown, methods: [...known.methods] },
    );
  }

  #deadline(slice: string, options: CallOptions): number {
    const now = this.#now();
    let explicit = Infinity;
    if (typeof options.deadlineMs === "number" && Number.isFinite(options.deadlineMs)) {
      explicit = options.deadlineMs;
    }
    if (typeof options.timeoutMs === "number" && options.timeoutMs >= 0) {
      explicit = Math.min(explicit, now + options.timeoutMs);
    }
    const configured = this.#options.sliceTimeoutMs?.(slice);
    const cap = now + Math.min(MAX_CALL_TIMEOUT_MS, configured ?? MAX_CALL_TIMEOUT_MS);
    if (explicit !== Infinity) return Math.min(explicit, cap);
    return now + (configured ?? this.#defaultTimeoutMs);
  }

  async #attempts(call: Call): Promise<InvokeOutcome> {
    // Allocated on the first failure only: nearly every call succeeds on its first attempt.
    let tried: Set<string> | undefined;
    const triedOn: Endpoint[] = [];
    let version0: string | undefined;
    let attempt = 0;
    let crashes = 0;
    let last: InvokeFailure | undefined;
    let activation = false;
    while (true) {
      if (this.#closed) {
        throw this.#final(
          call,
          new InvokeFailure("not_sent", "unavailable", "this node is stopping"),
          attempt,
          triedOn,
        );
      }
      if (this.#now() >= call.deadlineMs) {
        throw this.#final(
          call,
          new InvokeFailure(
            "deadline",
            "timeout",
            last ? `last failure: ${last.message}` : "no attempt could be made",
          ),
          attempt,
          triedOn,
        );
      }
      const candidates = this.#options.endpoints.lookup(call.slice, call.method, this.#live);
      const selection = this.#selector.select({
        slice: call.slice,
        method: call.method,
        candidates,
        version: call.version,
        range: call.range,
        routing: this.#options.routing?.(call.slice),
        tried: tried ?? NOTHING_TRIED,
        version0,
      });
      if (!selection && !activation && this.#options.activate) {
        activation = true;
        if (await this.#options.activate(call.slice, call.deadlineMs)) continue;
      }
      attempt++;
      let failure: InvokeFailure;
      if (!selection) {
        failure = new InvokeFailure(
          "no_instance",
          "unavailable",
          `no live instance of ${describe(call)} serves method ${call.method}`,
        );
        if (this.#spans) this.#recordNoInstance(call, attempt);
      } else {
        const endpoint = selection.endpoint;
        triedOn.push(endpoint);
        version0 ??= endpoint.version;
        // Traced inline (no wrapper per attempt): tests/bench/trace_bench.ts measures what tracing costs.
        const span = this.#spans ? this.#attemptStarted(endpoint, call, attempt) : undefined;
        try {
          const outcome = endpoint.node === this.self
            ? await this.#callLocal(endpoint, call, span?.traceparent ?? call.traceparent)
            : await this.#callRemote(endpoint, call, span?.traceparent ?? call.traceparent);
          if (span) this.#attemptEnded(span, call, outcome.ok ? "ok" : "error", outcome);
          return outcome;
        } catch (e) {
          failure = asInvokeFailure(e);
          if (span) this.#attemptEnded(span, call, failure.kind);
        }
        (tried ??= new Set()).add(endpoint.key);
      }
      last = failure;
      this.#failed.set(failure.kind, (this.#failed.get(failure.kind) ?? 0) + 1);
      if (isCrash(failure.kind)) crashes++;
      const decision = retryDecision(this.#policy, {
        kind: failure.kind,
        attempt,
        idempotent: call.idempotent,
        crashes,
      });
      if (!decision.retry) throw this.#final(call, failure, attempt, triedOn, crashes, decision.why);
      const fresh = this.#selector
        .eligible({
          candidates: this.#options.endpoints.lookup(call.slice, call.method, this.#live),
          version: call.version,
          range: call.range,
        })
        .some((e) => !tried?.has(e.key));
      const delayMs = retryDelayMs(this.#policy, {
        attempt,
        immediate: decision.immediate,
        freshInstance: fresh,
        remainingMs: call.deadlineMs - this.#now(),
      });
      this.#counters.retries++;
      this.#log.warn("call attempt failed; retrying", {
        requestId: call.requestId,
        slice: call.slice,
        method: call.method,
        attempt,
        kind: failure.kind,
        delayMs,
        error: failure.message,
      });
      if (delayMs > 0) await this.#sleep(delayMs);
    }
  }

  #callLocal(endpoint: Endpoint, call: Call, traceparent: string): Promise<InvokeOutcome> {
    this.#counters.local++;
    // Whether the instance is ACTIVE is the executor's one check (a refusal comes back as `not_active`).
    const instanceId = this.#instanceIdOf(endpoint);
    // Through #execute: a call run here is recorded here (the metrics, and so canary analysis, see it).
    return this.#execute(instanceId, call.method, call.request, {
      requestId: call.requestId,
      traceparent,
      deadlineMs: call.deadlineMs,
      ...(call.caller === undefined ? {} : { caller: call.caller }),
    });
  }

  #callRemote(endpoint: Endpoint, call: Call, traceparent: string): Promise<InvokeOutcome> {
    this.#counters.remote++;
    return this.remote.call(endpoint.node, {
      instanceId: this.#instanceIdOf(endpoint),
      method: call.method,
      payload: call.request,
      requestId: call.requestId,
      traceparent,
      deadlineMs: call.deadlineMs,
      fireAndForget: call.fireAndForget,
      ...(call.caller === undefined ? {} : { caller: call.caller }),
    });
  }

  /** Runs a call another node sent here. */
  #serve(call: ServedCall): Promise<InvokeOutcome> {
    this.#log.debug("serving a remote call", {
      requestId: call.requestId,
      from: call.from,
      instance: call.instanceId,
      method: call.method,
    });
    if (this.#spans) return this.#tracedServe(call);
    return this.#execute(call.instanceId, call.method, call.payload, {
      requestId: call.requestId,
      traceparent: call.traceparent,
      deadlineMs: call.deadlineMs,
      ...(call.caller === undefined ? {} : { caller: call.caller }),
    });
  }

  /**
   * Runs a call on a local instance, recorded where it runs (so a call counts once in the cluster, on the
   * node that ran it, whichever node it came from). Its error kind: `slice_error` for the slice's own error,
   * else the failure's kind.
   */
  #execute(
    instanceId: string,
    method: string,
    request: unknown,
    options: InvokeOptions,
  ): Promise<InvokeOutcome> {
    const recorder = this.#options.metrics;
    if (recorder === undefined) return this.#options.executor.invoke(instanceId, method, request, options);
    const series = recorder.begin(this.#coordinatesOf(instanceId), method);
    const startedAt = performance.now();
    return this.#options.executor.invoke(instanceId, method, request, options).then(
      (outcome) => {
        series.end(performance.now() - startedAt, outcome.ok ? undefined : "slice_error");
        return outcome;
      },
      (e) => {
        series.end(performance.now() - startedAt, failureKindOf(e));
        throw e;
      },
    );
  }

  /** `group:artifact:version` of an executor instance id (`group:artifact:version/n`), cached. */
  #coordinatesOf(instanceId: string): string {
    let coordinates = this.#coordinates.get(instanceId);
    if (coordinates === undefined) {
      const slash = instanceId.indexOf("/");
      coordinates = slash < 0 ? instanceId : instanceId.slice(0, slash);
      if (this.#coordinates.size >= 10_000) this.#coordinates.clear();
      this.#coordinates.set(instanceId, coordinates);
    }
    return coordinates;
  }

  // ------------------------------------------------------------------------------------- spans (spans.ts)

  /**
   * An attempt's span begins: its own span id in the traceparent it sends (the callee's `serve` span is its
   * child), and a run registered when the instance is local, so the slice's own calls find their parent. The
   * first attempt starts when the call did: one clock read fewer per call.
   *
   * A first attempt on a local instance gets no span of its own (nor a traceparent: the slice runs in the
   * call's span, and its calls nest under it): the call's span shows the instance it ran on. That is nearly
   * every call, and it halves what tracing costs them; a local attempt that fails is recorded when it fails,
   * so a retried call shows each of its attempts.
   */
  #attemptStarted(endpoint: Endpoint, call: Call, attempt: number): AttemptSpan {
    const instance = this.#instanceIdOf(endpoint);
    const local = endpoint.node === this.self;
    if (local && attempt === 1) {
      const traceparent = call.traceparent;
      return { traceparent, instance, run: this.#runStarted(call.requestId, instance, traceparent) };
    }
    const traceparent = withSpanId(call.traceparent, randomHexId(8));
    return {
      record: {
        kind: "attempt",
        traceparent,
        parent: call.traceparent,
        requestId: call.requestId,
        node: this.self,
        slice: call.slice,
        method: call.method,
        instance,
        peer: endpoint.node,
        attempt,
        startMs: attempt === 1 ? call.spanStartMs : spanClockMs(),
        durationMs: 0,
        outcome: "ok",
        status: undefined,
      },
      traceparent,
      instance,
      run: local ? this.#runStarted(call.requestId, instance, traceparent) : undefined,
    };
  }

  /** An attempt's span ends; an answered call ends with it (the same clock read). */
  #attemptEnded(span: AttemptSpan, call: Call, outcome: string, answer?: InvokeOutcome): void {
    if (span.run) this.#runEnded(call.requestId, span.run);
    const endMs = spanClockMs();
    const status = answer !== undefined && !answer.ok ? answer.error.status : undefined;
    const record = span.record ?? (answer === undefined ? this.#failedLocalAttempt(span, call) : undefined);
    if (record) {
      record.durationMs = endMs - record.startMs;
      record.outcome = outcome;
      record.status = status;
      this.#record(record);
    }
    // A call answered by its folded first attempt shows where it ran.
    if (answer !== undefined) {
      this.#recordCall(call, endMs, outcome, status, span.record ? undefined : span.instance);
    }
  }

  /** Hands a span to the sink; a sink that throws (it must not) never turns a call's answer into a failure. */
  #record(record: SpanRecord): void {
    try {
      this.#spans!.record(record);
    } catch {
      // Dropped: a span is worth less than the call it describes.
    }
  }

  /** The span of a folded local first attempt that failed (the call goes on to retry or gives up). */
  #failedLocalAttempt(span: AttemptSpan, call: Call): SpanRecord {
    return {
      kind: "attempt",
      traceparent: withSpanId(call.traceparent, randomHexId(8)),
      parent: call.traceparent,
      requestId: call.requestId,
      node: this.self,
      slice: call.slice,
      method: call.method,
      instance: span.instance,
      peer: this.self,
      attempt: 1,
      startMs: call.spanStartMs,
      durationMs: 0,
      outcome: "ok",
      status: undefined,
    };
  }

  /** The call's span: its id is the call's traceparent's span id. */
  #recordCall(call: Call, endMs: number, outcome: string, status?: number, instance?: string): void {
    this.#record({
      kind: "call",
      traceparent: call.traceparent,
      parent: call.parentTraceparent,
      requestId: call.requestId,
      node: this.self,
      slice: call.slice,
      version: call.version,
      method: call.method,
      // Where the call ran when its first attempt, on a local instance, answered it (no attempt span).
      instance,
      peer: instance === undefined ? undefined : this.self,
      startMs: call.spanStartMs,
      durationMs: endMs - call.spanStartMs,
      outcome,
      status,
    });
  }

  /** An attempt that found no live instance to try: a span of no length, so the retries show. */
  #recordNoInstance(call: Call, attempt: number): void {
    this.#record({
      kind: "attempt",
      traceparent: withSpanId(call.traceparent, randomHexId(8)),
      parent: call.traceparent,
      requestId: call.requestId,
      node: this.self,
      slice: call.slice,
      version: call.version,
      method: call.method,
      attempt,
      startMs: spanClockMs(),
      durationMs: 0,
      outcome: "no_instance",
    });
  }

  /** A call from another node as a `serve` span, the child of the caller's attempt. */
  async #tracedServe(call: ServedCall): Promise<InvokeOutcome> {
    const startMs = spanClockMs();
    const valid = isTraceparent(call.traceparent);
    const traceparent = withSpanId(valid ? call.traceparent : newTraceparent(), randomHexId(8));
    const run = this.#runStarted(call.requestId, call.instanceId, traceparent);
    let outcome = "ok";
    let status: number | undefined;
    try {
      const result = await this.#execute(call.instanceId, call.method, call.payload, {
        requestId: call.requestId,
        traceparent,
        deadlineMs: call.deadlineMs,
        ...(call.caller === undefined ? {} : { caller: call.caller }),
      });
      if (!result.ok) {
        outcome = "error";
        status = result.error.status;
      }
      return result;
    } catch (e) {
      outcome = asInvokeFailure(e).kind;
      throw e;
    } finally {
      if (run) this.#runEnded(call.requestId, run);
      this.#record({
        kind: "serve",
        traceparent,
        parent: valid ? call.traceparent : undefined,
        requestId: call.requestId,
        node: this.self,
        method: call.method,
        instance: call.instanceId,
        peer: call.from,
        startMs,
        durationMs: spanClockMs() - startMs,
        outcome,
        status,
      });
    }
  }

  /** Registers a slice run on a local instance; undefined when MAX_TRACED_RUNS are registered already. */
  #runStarted(requestId: string, instance: string, traceparent: string): Run | undefined {
    if (this.#runCount >= MAX_TRACED_RUNS) return undefined;
    const run: Run = { instance, traceparent, next: this.#runs.get(requestId) };
    this.#runs.set(requestId, run);
    this.#runCount++;
    return run;
  }

  #runEnded(requestId: string, run: Run): void {
    const head = this.#runs.get(requestId);
    if (head === run) {
      if (run.next) this.#runs.set(requestId, run.next);
      else this.#runs.delete(requestId);
    } else {
      let before = head;
      while (before && before.next !== run) before = before.next;
      if (!before) return;
      before.next = run.next;
    }
    this.#runCount--;
  }

  /** The traceparent of the run of `requestId` on `instance` here (the newest, when it runs there twice). */
  #runOf(requestId: string, instance: string): string | undefined {
    for (let run = this.#runs.get(requestId); run; run = run.next) {
      if (run.instance === instance) return run.traceparent;
    }
    return undefined;
  }

  /** The error a caller gets when the invoker gives up. */
  #final(
    call: Call,
    failure: InvokeFailure,
    attempts: number,
    tried: Endpoint[],
    crashes = 0,
    why = "",
  ): AetherError {
    const triedOn = tried.map((e) => `${e.artifact}/${e.n}@${e.node}`);
    const elapsedMs = Math.round(this.#now() - call.startedAt);
    const extra = { slice: call.slice, method: call.method, attempts, requestId: call.requestId };
    const where = `${describe(call)}.${call.method} (request ${call.requestId})`;
    if (this.#spans) this.#recordCall(call, spanClockMs(), failure.kind);
    let error: AetherError;
    if (failure.kind === "deadline") {
      error = new InvokeFailure(
        "deadline",
        "timeout",
        `${where}: deadline exceeded after ${elapsedMs} ms and ${attempts} attempt(s); ${failure.message}`,
        extra,
      );
    } else if (failure.kind === "rejected") {
      error = new InvokeFailure("rejected", failure.code, `${where}: ${failure.message}`, extra);
    } else if (failure.kind === "no_instance" && triedOn.length === 0) {
      error = new InvokeFailure(
        "no_instance",
        "unavailable",
        `${where}: no live instance (looked ${attempts} time(s) over ${elapsedMs} ms)`,
        extra,
      );
    } else if (isCrash(failure.kind)) {
      // A request that crashes instances is answered, not spread over the slice: a 500 naming the crash.
      error = new InvokeFailure(
        failure.kind,
        "internal",
        `${where}: ${crashes} instance(s) crashed while serving this request (tried ${
          triedOn.join(", ")
        }); not retried further: ${why}; last crash: ${failure.message}`,
        { ...extra, crashes },
      );
      this.#log.error("a request crashed slice instances", {
        requestId: call.requestId,
        slice: call.slice,
        method: call.method,
        crashes,
        instances: triedOn.slice(-crashes).join(", "),
        error: failure.message,
      });
    } else if (failure.kind === "node_departed" || failure.kind === "instance_failed") {
      const why = call.idempotent
        ? `every attempt failed`
        : `not retried: the call is not idempotent and its outcome is unknown`;
      error = new InvokeFailure(
        failure.kind,
        "unavailable",
        `${where}: ${why}; tried ${triedOn.join(", ")}; last failure: ${failure.message}`,
        extra,
      );
    } else {
      // An instance's `maxPendingRequests` (or a peer's flow bound) says when to come back: pass it on.
      const retryAfterSeconds = failure.extra.retryAfterSeconds;
      error = new InvokeFailure(
        failure.kind,
        failure.code === "overloaded" ? "overloaded" : "unavailable",
        `${where}: every attempt failed (${attempts} in ${elapsedMs} ms); tried ${
          triedOn.join(", ") || "no instance"
        }; last failure: ${failure.message}`,
        retryAfterSeconds === undefined ? extra : { ...extra, retryAfterSeconds },
      );
    }
    this.#log.warn("call failed", {
      requestId: call.requestId,
      slice: call.slice,
      method: call.method,
      kind: failure.kind,
      attempts,
      error: error.message,
    });
    return error;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const sleeper = {
        timer: setTimeout(() => {
          this.#sleeping.delete(sleeper);
          resolve();
        }, ms),
        wake: () => resolve(),
      };
      this.#sleeping.add(sleeper);
    });
  }
}

const NOTHING_TRIED: ReadonlySet<string> = new Set();

interface Call {
  slice: string;
  version?: string;
  range?: string;
  method: string;
  request: unknown;
  requestId: string;
  traceparent: string;
  deadlineMs: number;
  fireAndForget: boolean;
  idempotent: boolean;
  startedAt: number;
  /** When the call began on the span clock (0 without a span sink). */
  spanStartMs: number;
  parentTraceparent?: string;
  /** The calling slice's coordinates (`OutboundCall.from`): the callee's `ctx.caller`. */
  caller?: string;
}

/** An attempt's span while it runs. */
interface AttemptSpan {
  /** Absent for a local first attempt (folded into the call's span). */
  record?: SpanRecord;
  /** The traceparent sent with the attempt. */
  traceparent: string;
  instance: string;
  run?: Run;
}

/** A slice run in flight on this node (requests of one id chained: a request may run on several instances). */
interface Run {
  instance: string;
  /** The run's span (an attempt's or a served call's traceparent). */
  traceparent: string;
  next: Run | undefined;
}

function describe(call: Pick<Call, "slice" | "version" | "range">): string {
  if (call.version) return `${call.slice}:${call.version}`;
  if (call.range) return `${call.slice}@${call.range}`;
  return call.slice;
}

export type { FailureKind };
