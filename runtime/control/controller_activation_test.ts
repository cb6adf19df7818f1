import assert from "node:assert/strict";
import { type AetherError, silentLogger } from "../core/mod.ts";
import { type KvCommand, type KvEvent, KvState } from "../kv/mod.ts";
import { encodeValue, kvKeys, type TargetRecord } from "../model/mod.ts";
import { Activator } from "./controller_activation.ts";

const SLICE = "org.example:lazy";

/** A single-member store: the real KV state machine; writes apply on the next task, then listeners run. */
class Store {
  readonly state = new KvState();
  readonly #listeners = new Set<(events: readonly KvEvent[]) => void>();
  writes = 0;

  write(command: KvCommand) {
    this.writes++;
    return new Promise<{ revision: number; succeeded?: boolean }>((resolve) => {
      setTimeout(() => {
        const events: KvEvent[] = [];
        const result = this.state.apply(command, events);
        if (!result.ok) throw new Error("store refused a command");
        for (const listener of this.#listeners) listener(events);
        resolve({ revision: result.revision, succeeded: result.succeeded });
      }, 0);
    });
  }

  onEvents(listener: (events: readonly KvEvent[]) => void) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  target(): TargetRecord {
    return JSON.parse(new TextDecoder().decode(this.state.get(kvKeys.target(SLICE))!.value));
  }
}

function setup(target: Partial<TargetRecord>, options: { maxHeld?: number; maxWaitMs?: number } = {}) {
  const store = new Store();
  const record: TargetRecord = {
    version: "1.0.0",
    instances: 0,
    min: 0,
    max: 3,
    owners: [],
    updatedAt: 1,
    ...target,
  };
  store.state.apply({ type: "put", key: kvKeys.target(SLICE), value: encodeValue("target", record) });
  const activator = new Activator({
    kv: store,
    state: () => store.state,
    onEvents: (l) => store.onEvents(l),
    clock: { now: () => performance.now() },
    log: silentLogger,
    ...options,
  });
  const publishEndpoint = () =>
    store.write({
      type: "put",
      key: kvKeys.endpoint(`${SLICE}:1.0.0`, "get", "n1", 1),
      value: encodeValue("endpoint", { registeredAt: 1 }),
    });
  return { store, activator, publishEndpoint };
}

Deno.test("activation: a call for a slice at zero raises its target to 1 once and is served when an endpoint appears", async () => {
  const { store, activator, publishEndpoint } = setup({});
  const deadline = performance.now() + 10_000;
  const calls = [activator.activate(SLICE, deadline), activator.activate(`${SLICE}:1.0.0`, deadline)];
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(store.target().instances, 1);
  assert.equal(activator.stats().held, 2);
  assert.equal(activator.stats().activations, 1, "of two calls at once, one raise applies");
  await publishEndpoint();
  assert.deepEqual(await Promise.all(calls), [true, true]);
  const stats = activator.stats();
  assert.equal(stats.held, 0);
  assert.equal(stats.coldStarts.count, 1);
  assert.ok(stats.coldStarts.lastMs! >= 15, `cold start ${stats.coldStarts.lastMs} ms`);
  assert.equal(await activator.activate(SLICE, deadline), true, "served now: no hold");
  activator.close();
});

Deno.test("activation: a slice without min = 0 is not held (the invoker's usual no_instance answer)", async () => {
  const { activator } = setup({ instances: 1, min: 1 });
  assert.equal(await activator.activate(SLICE, performance.now() + 1_000), false);
  activator.close();
});

Deno.test("activation: beyond the held bound a call gets 503 overloaded with retry-after; no instance in time gets 503 too", async () => {
  const { activator } = setup({}, { maxHeld: 2, maxWaitMs: 200 });
  const deadline = performance.now() + 10_000;
  const held = [activator.activate(SLICE, deadline), activator.activate(SLICE, deadline)];
  held.forEach((p) => p.catch(() => {}));
  await new Promise((r) => setTimeout(r, 20));
  await assert.rejects(activator.activate(SLICE, deadline), (e: AetherError) => {
    assert.equal(e.code, "overloaded");
    assert.equal(e.extra.retryAfterSeconds, 1);
    assert.match(e.message, /2 calls already wait/);
    return true;
  });
  for (const p of held) {
    await assert.rejects(p, (e: AetherError) => e.code === "unavailable" && e.extra.retryAfterSeconds === 1);
  }
  assert.equal(activator.stats().refused, 1);
  assert.equal(activator.stats().timedOut, 2);
  activator.close();
});
