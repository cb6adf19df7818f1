/**
 * Testing slices in-process with `deno test`: `testSlice(definition, options)` runs the same runtime code as
 * the sandbox (contexts, loggers, clients, error and response handling), checks the definition the way the
 * build does (coordinates, version ranges, routes, config schema), and lets dependencies be other slice
 * definitions or plain functions. Requests and results go through JSON, as they do over HTTP and the mesh.
 *
 * ```ts
 * const t = await testSlice(inventory, { config: { lowStock: 3 } });
 * assertEquals(await t.call("checkStock", { sku: "A" }), { available: true });
 * ```
 */

import { AetherError, newTraceparent } from "../runtime/core/mod.ts";
import {
  describeDefinition,
  enableAsyncScope,
  errorInfo,
  RemoteSliceError,
  routeConsole,
  SliceInstance,
} from "./_runtime.ts";
import type { AnySliceDefinition, BodyOf, JsonValue, LogLevel, SliceDefinition } from "./_types.ts";
import { resolveConfig } from "./config.ts";
import { manifestFromDescription, type SliceManifest, statusForError } from "./manifest.ts";
import type { InvokeOutcome, RuntimeMessage } from "./protocol.ts";
import { TestInfra } from "./_test_infra.ts";

export { TestInfra };

/** The infrastructure every test slice reaches unless given its own. */
const sharedInfra = new TestInfra();

export { RemoteSliceError } from "./_runtime.ts";

// deno-lint-ignore no-explicit-any
type AnyFn = (...args: any[]) => unknown;
type MethodsOf<D> = D extends SliceDefinition<infer M, infer _C, infer _S> ? M : never;
type RequestOf<F> = F extends (request: infer Q, ...rest: never[]) => unknown ? Q : never;
type ResultOf<F> = F extends AnyFn ? BodyOf<Awaited<ReturnType<F>>> : never;
type CallsOf<D> = D extends SliceDefinition<infer _M, infer C, infer _S> ? C : never;

/** A stand-in for a dependency: another slice's definition, or functions per method. */
export type DependencyStub = AnySliceDefinition | Record<string, (request: never) => unknown>;

export interface TestSliceOptions<D> {
  /** Configuration values, as a deployment would give them (schema defaults apply). */
  config?: Record<string, unknown>;
  /** The slices this one calls, by their name in `calls`. */
  calls?: { [K in keyof CallsOf<D>]?: DependencyStub };
  instanceId?: string;
  /** Deadline of each call; default 30 s. */
  timeoutMs?: number;
  /**
   * The in-memory infrastructure services `ctx.infra` calls reach. Default: one shared by every test slice of
   * the process (as slices of one group share a cluster's); pass a `new TestInfra()` for data of its own.
   */
  infra?: TestInfra;
}

export interface TestLogRecord {
  level: LogLevel;
  message: string;
  requestId?: string;
  fields?: Record<string, JsonValue>;
}

export interface TestOutboundCall {
  name: string;
  method: string;
  payload: unknown;
  requestId: string;
  fireAndForget: boolean;
}

export interface TestSlice<D> {
  /** The manifest the build would derive (with a placeholder hash). */
  readonly manifest: SliceManifest;
  /** Calls a method; resolves with its result body, throws `RemoteSliceError` (name, status) when it throws. */
  call<K extends keyof MethodsOf<D> & string>(
    method: K,
    request: RequestOf<MethodsOf<D>[K]>,
    options?: { requestId?: string; timeoutMs?: number },
  ): Promise<ResultOf<MethodsOf<D>[K]>>;
  /** Calls a method and returns the raw outcome, with status and headers. */
  invoke(
    method: string,
    request: unknown,
    options?: { requestId?: string; timeoutMs?: number },
  ): Promise<InvokeOutcome>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Every log line written so far (ctx.log and console), with its request id. */
  readonly logs: TestLogRecord[];
  /** Every call this slice made to another. */
  readonly outbound: TestOutboundCall[];
}

function throughJson<T>(value: T): T {
  const text = JSON.stringify(value);
  return text === undefined ? undefined as T : JSON.parse(text);
}

/** Builds an in-process test instance of a slice definition. */
export async function testSlice<D extends AnySliceDefinition>(
  definition: D,
  options: TestSliceOptions<D> = {},
): Promise<TestSlice<D>> {
  routeConsole();
  await enableAsyncScope();
  const description = describeDefinition(definition);
  const manifest = manifestFromDescription(description, {
    sha256: "0".repeat(64),
    sizeBytes: 1,
    builtAt: new Date().toISOString(),
  });
  const config = resolveConfig(manifest.config.schema, options.config ?? {});
  const timeoutMs = options.timeoutMs ?? 30_000;
  const logs: TestLogRecord[] = [];
  const outbound: TestOutboundCall[] = [];
  const pending = new Map<number, (outcome: InvokeOutcome) => void>();
  const stubs = (options.calls ?? {}) as Record<string, DependencyStub | undefined>;
  const infra = options.infra ?? sharedInfra;
  const dependencies = new Map<string, Promise<TestSlice<AnySliceDefinition>>>();
  let nextId = 1;

  const dependency = (name: string, stub: AnySliceDefinition) => {
    let made = dependencies.get(name);
    if (!made) dependencies.set(name, made = testSlice(stub, { infra }));
    return made;
  };

  const deliver = async (message: Extract<RuntimeMessage, { t: "call-out" }>): Promise<InvokeOutcome> => {
    if (message.name === "@infra") {
      const service = message.artifact.slice("aether.infra:".length);
      if (!manifest.requires.includes(service)) {
        throw new AetherError(
          "forbidden",
          `${message.artifact} is not among the infrastructure services this slice requires`,
        );
      }
      return throughJson(
        infra.serve(service, message.method, throughJson(message.payload) as Record<string, unknown>),
      );
    }
    const stub = stubs[message.name];
    if (stub === undefined) {
      throw new AetherError(
        "unavailable",
        `testSlice: no stub for calls.${message.name} (pass it in options.calls)`,
      );
    }
    if ((stub as SliceDefinition).kind === "aether.slice") {
      const dep = await dependency(message.name, stub as AnySliceDefinition);
      return dep.invoke(message.method, message.payload, { requestId: message.requestId });
    }
    const fn = (stub as Record<string, unknown>)[message.method];
    if (typeof fn !== "function") {
      throw new AetherError(
        "not_found",
        `testSlice: the stub for calls.${message.name} has no ${message.method}()`,
      );
    }
    try {
      return { ok: true, value: throughJson(await fn(throughJson(message.payload))) };
    } catch (e) {
      return { ok: false, error: errorInfo(e) };
    }
  };

  const instance = new SliceInstance(
    definition,
    { coordinates: manifest.coordinates, instanceId: options.instanceId ?? "test" },
    config,
    {
      send(message: RuntimeMessage) {
        switch (message.t) {
          case "done": {
            const outcome = throughJson(message.outcome);
            if (!outcome.ok) outcome.error.status = statusForError(manifest.routes, outcome.error);
            pending.get(message.id)?.(outcome);
            pending.delete(message.id);
            return;
          }
          case "log":
            logs.push({
              level: message.level,
              message: message.message,
              requestId: message.requestId,
              fields: message.fields,
            });
            return;
          case "call-out": {
            outbound.push({
              name: message.name,
              method: message.method,
              payload: throughJson(message.payload),
              requestId: message.requestId,
              fireAndForget: message.fireAndForget,
            });
            const result = deliver(message).catch((e): InvokeOutcome => ({
              ok: false,
              error: { name: "SliceCallFailed", message: (e as Error).message, status: 503 },
            }));
            if (!message.fireAndForget) result.then((outcome) => instance.settle(message.id, outcome));
            return;
          }
        }
      },
    },
  );

  const run = (
    send: (id: number, meta: { requestId: string; traceparent: string; deadline: number }) => void,
    options: { requestId?: string; timeoutMs?: number } = {},
  ) =>
    new Promise<InvokeOutcome>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      send(id, {
        requestId: options.requestId ?? `test-${id}`,
        traceparent: newTraceparent(),
        deadline: Date.now() + (options.timeoutMs ?? timeoutMs),
      });
    });

  const invoke = (method: string, request: unknown, opts?: { requestId?: string; timeoutMs?: number }) =>
    run((id, meta) => instance.call(id, method, throughJson(request), meta), opts);

  const hook = async (name: "start" | "stop") => {
    const outcome = await run((id, meta) => instance.hook(id, name, meta));
    if (!outcome.ok) throw new RemoteSliceError(outcome.error);
  };

  return {
    manifest,
    logs,
    outbound,
    invoke,
    async call(method, request, opts) {
      const outcome = await invoke(method, request, opts);
      if (!outcome.ok) throw new RemoteSliceError(outcome.error);
      return outcome.value as never;
    },
    start: () => hook("start"),
    stop: () => hook("stop"),
  };
}
