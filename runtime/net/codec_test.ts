import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { CODEC_NAMES, createCodec } from "./codec.ts";

const value = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** The kinds of message the mesh carries: consensus votes and batches, invocation calls, metrics. */
const messages: unknown[] = [
  { t: "vote1", phase: 123456, round: 1, value: 1, batchId: "n1:3:123456" },
  { t: "vote2", phase: 7, round: 2, value: 2 },
  {
    t: "propose",
    phase: 9,
    batch: {
      id: "n1:a1b2:17",
      submitter: "n1",
      createdAt: 1_732_280_000_123,
      commands: Array.from(
        { length: 100 },
        (_, i) => ({ type: "put", key: `app/k/${i}`, value: value(100, i) }),
      ),
    },
  },
  { t: "decision", phase: 10, batch: null },
  { t: "syncRes", nonce: 3, lastDecided: 99, snapshot: { phase: 90, data: value(65536) }, decisions: [] },
  {
    id: 42,
    method: "échô ✓ 𝄞",
    body: value(0),
    nested: [[1, -2.5, 2 ** 53 - 1, -(2 ** 31)], { deep: { x: [value(3)] } }],
  },
  "plain string",
  12.75,
  null,
  true,
  [],
  {},
];

for (const name of CODEC_NAMES) {
  Deno.test(`${name} codec round-trips consensus, invocation and binary messages exactly`, () => {
    const codec = createCodec(name);
    for (const message of messages) {
      const encoded = codec.encodeShared(message).slice();
      assert.deepEqual(codec.decode(encoded), message);
    }
  });

  Deno.test(`${name} codec leaves undefined fields absent instead of turning them into null`, () => {
    const codec = createCodec(name);
    const decoded = codec.decode(codec.encodeShared({ t: "vote2", value: 2, batchId: undefined }).slice());
    assert.deepEqual(decoded, { t: "vote2", value: 2 });
    assert.equal(Object.hasOwn(decoded as object, "batchId"), false);
  });

  Deno.test(`${name} codec returns binary values that own their memory (they do not pin the frame)`, () => {
    const codec = createCodec(name);
    const frame = codec.encodeShared({ commands: [{ value: value(100) }, { value: value(5) }] }).slice();
    const decoded = codec.decode(frame) as { commands: { value: Uint8Array }[] };
    for (const { value: v } of decoded.commands) {
      assert.ok(v instanceof Uint8Array);
      assert.notEqual(v.buffer, frame.buffer);
      assert.equal(
        v.buffer.byteLength,
        v.byteLength,
        "a decoded value must not be a view into a larger buffer",
      );
    }
    frame.fill(0);
    assert.deepEqual(
      decoded.commands[0].value,
      value(100),
      "overwriting the frame must not change decoded values",
    );
  });

  Deno.test(`${name} codec refuses what it cannot encode with a bad_request error`, () => {
    const codec = createCodec(name);
    const error = assertThrowsAether(() => codec.encodeShared({ n: 10n }));
    assert.equal(error.code, "bad_request");
    assert.match(error.message, new RegExp(name, "i"));
  });

  Deno.test(`${name} codec throws on garbage input instead of returning something`, () => {
    const codec = createCodec(name);
    const good = codec.encodeShared({ a: "hello", b: value(10) }).slice();
    assert.throws(() => codec.decode(good.subarray(0, good.byteLength - 3)));
    assert.throws(() => codec.decode(new Uint8Array([0xc1, 0xff, 0xff])));
  });
}

Deno.test("JSON codec reserves its binary marker key", () => {
  const codec = createCodec("json");
  const error = assertThrowsAether(() => codec.encodeShared({ "\u0000bin": 0, data: new Uint8Array(1) }));
  assert.match(error.message, /reserved/);
});

Deno.test("JSON codec rejects a payload that points at a missing attachment", () => {
  const codec = createCodec("json");
  const encoded = codec.encodeShared({ v: value(4) }).slice();
  // Drop the attachment but keep the count: header says 1 attachment, none follows.
  const view = new DataView(encoded.buffer);
  const textBytes = view.getUint32(0);
  assert.throws(() => codec.decode(encoded.subarray(0, 4 + textBytes + 2)), /truncated/);
});

Deno.test("msgpack carries less than JSON for a batch of binary puts", () => {
  const batch = messages[2];
  const msgpackBytes = createCodec("msgpack").encodeShared(batch).byteLength;
  const jsonBytes = createCodec("json").encodeShared(batch).byteLength;
  assert.ok(msgpackBytes < jsonBytes, `msgpack ${msgpackBytes} bytes, JSON ${jsonBytes} bytes`);
});

function assertThrowsAether(f: () => unknown): AetherError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof AetherError, `expected an AetherError, got ${e}`);
    return e;
  }
  assert.fail("expected an exception");
}
