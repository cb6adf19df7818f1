/**
 * Message codecs of the mesh. A message is structured data: null, booleans, finite numbers, strings, arrays,
 * plain objects and `Uint8Array` (KV values). Both codecs round-trip exactly that set; object keys whose value
 * is `undefined` are left out (as JSON does), so optional fields stay absent on the other side.
 *
 * Decoded `Uint8Array`s are always fresh copies, never views into the received frame: a KV value kept for hours
 * must not pin the (up to megabytes large) frame it arrived in.
 *
 * The default codec was chosen by measurement (tests/bench/mesh_bench.ts, figures in runtime/net/README.md);
 * every frame names its codec, so a receiver decodes either one.
 */

import { Decoder, Encoder } from "@msgpack/msgpack";
import { AetherError } from "../core/mod.ts";

export type CodecName = "msgpack" | "json";

export interface MeshCodec {
  readonly name: CodecName;
  /** The codec's byte in a data frame's header. */
  readonly id: number;
  /**
   * Encodes one message. The result is a view into a scratch buffer that stays valid only until the next call
   * of `encodeShared` on this codec: copy it before encoding anything else.
   */
  encodeShared(message: unknown): Uint8Array;
  /** Decodes one message; binary values in the result are fresh copies that own their memory. */
  decode(bytes: Uint8Array): unknown;
}

// ---------------------------------------------------------------------------------------------------------
// msgpack

/**
 * @msgpack/msgpack decodes `bin` as a subarray of the input. This subclass copies instead, so decoded values
 * do not retain the frame. It overrides an internal method of the pinned version (3.1.3); codec_test.ts fails
 * if an upgrade changes that.
 */
class CopyingDecoder extends Decoder {}
const baseDecodeBinary = (Decoder.prototype as unknown as {
  decodeBinary: (this: Decoder, byteLength: number, headOffset: number) => Uint8Array;
}).decodeBinary;
Object.defineProperty(CopyingDecoder.prototype, "decodeBinary", {
  value: function (this: Decoder, byteLength: number, headOffset: number): Uint8Array {
    return baseDecodeBinary.call(this, byteLength, headOffset).slice();
  },
});

export function createMsgpackCodec(): MeshCodec {
  const encoder = new Encoder({ ignoreUndefined: true, initialBufferSize: 64 * 1024 });
  const decoder = new CopyingDecoder();
  return {
    name: "msgpack",
    id: 1,
    encodeShared(message) {
      try {
        return encoder.encodeSharedRef(message);
      } catch (e) {
        throw new AetherError("bad_request", `mesh msgpack codec cannot encode the message: ${errorText(e)}`);
      }
    },
    decode(bytes) {
      return decoder.decode(bytes);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// JSON with binary attachments
//
// Payload layout: [u32 textBytes][UTF-8 JSON text][u16 attachmentCount]([u32 length][bytes])*
// A Uint8Array inside the message becomes {"\u0000bin": index} in the text and its bytes travel raw after it,
// so binary costs neither base64 inflation nor a per-byte JSON array. The marker key is reserved: encoding an
// object that has it as an own key fails.

const BIN_MARK = "\u0000bin";
const MAX_ATTACHMENTS = 0xffff;

export function createJsonCodec(): MeshCodec {
  const textEncoder = new TextEncoder();
  const textDecoder = new TextDecoder();
  let scratch = new Uint8Array(64 * 1024);
  let attachments: Uint8Array[] = [];

  const replacer = (_key: string, value: unknown): unknown => {
    if (typeof value === "object" && value !== null) {
      if (value instanceof Uint8Array) {
        if (attachments.length >= MAX_ATTACHMENTS) {
          throw new Error(`more than ${MAX_ATTACHMENTS} binary values in one message`);
        }
        attachments.push(value);
        return { [BIN_MARK]: attachments.length - 1 };
      }
      if (!Array.isArray(value) && Object.hasOwn(value, BIN_MARK)) {
        throw new Error(`the object key ${JSON.stringify(BIN_MARK)} is reserved by the JSON codec`);
      }
    }
    return value;
  };

  const ensureScratch = (bytes: number) => {
    if (scratch.byteLength >= bytes) return;
    let size = scratch.byteLength * 2;
    while (size < bytes) size *= 2;
    scratch = new Uint8Array(size);
  };

  return {
    name: "json",
    id: 2,
    encodeShared(message) {
      attachments = [];
      let text: string | undefined;
      try {
        // The replacer costs V8 its fast path (about 5x on small messages): use it only when there is binary.
        text = containsBinary(message, 0) ? JSON.stringify(message, replacer) : JSON.stringify(message);
      } catch (e) {
        throw new AetherError("bad_request", `mesh JSON codec cannot encode the message: ${errorText(e)}`);
      }
      if (text === undefined) {
        throw new AetherError(
          "bad_request",
          "mesh JSON codec cannot encode the message: it is not JSON data",
        );
      }
      // UTF-8 needs at most 3 bytes per UTF-16 code unit.
      let attachmentBytes = 0;
      for (const a of attachments) attachmentBytes += 4 + a.byteLength;
      ensureScratch(4 + text.length * 3 + 2 + attachmentBytes);
      const { written } = textEncoder.encodeInto(text, scratch.subarray(4));
      const view = new DataView(scratch.buffer);
      view.setUint32(0, written);
      let pos = 4 + written;
      view.setUint16(pos, attachments.length);
      pos += 2;
      for (const a of attachments) {
        view.setUint32(pos, a.byteLength);
        scratch.set(a, pos + 4);
        pos += 4 + a.byteLength;
      }
      attachments = [];
      return scratch.subarray(0, pos);
    },
    decode(bytes) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (bytes.byteLength < 6) throw new Error("JSON payload shorter than its header");
      const textBytes = view.getUint32(0);
      if (4 + textBytes + 2 > bytes.byteLength) {
        throw new Error("JSON payload text length exceeds the payload");
      }
      const value: unknown = JSON.parse(textDecoder.decode(bytes.subarray(4, 4 + textBytes)));
      let pos = 4 + textBytes;
      const count = view.getUint16(pos);
      pos += 2;
      if (count === 0) {
        if (pos !== bytes.byteLength) throw new Error("JSON payload has trailing bytes");
        return value;
      }
      const found: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        if (pos + 4 > bytes.byteLength) throw new Error("JSON payload attachment header truncated");
        const length = view.getUint32(pos);
        pos += 4;
        if (pos + length > bytes.byteLength) throw new Error("JSON payload attachment truncated");
        found.push(bytes.subarray(pos, pos + length));
        pos += length;
      }
      if (pos !== bytes.byteLength) throw new Error("JSON payload has trailing bytes");
      return reviveBinary(value, found);
    },
  };
}

const MAX_DEPTH = 100;

function containsBinary(value: unknown, depth: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (value instanceof Uint8Array) return true;
  if (depth > MAX_DEPTH) throw new Error(`message nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === "object" && item !== null && containsBinary(item, depth + 1)) return true;
    }
    return false;
  }
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    if (typeof item === "object" && item !== null && containsBinary(item, depth + 1)) return true;
  }
  return false;
}

function reviveBinary(value: unknown, attachments: Uint8Array[]): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === "object" && item !== null) value[i] = reviveBinary(item, attachments);
    }
    return value;
  }
  const record = value as Record<string, unknown>;
  if (Object.hasOwn(record, BIN_MARK)) {
    const index = record[BIN_MARK];
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= attachments.length) {
      throw new Error(`JSON payload refers to a missing binary attachment ${String(index)}`);
    }
    return attachments[index].slice();
  }
  for (const key of Object.keys(record)) {
    const item = record[key];
    if (typeof item !== "object" || item === null) continue;
    const revived = reviveBinary(item, attachments);
    // defineProperty, not assignment: a "__proto__" key from JSON.parse must stay a plain data property.
    if (revived !== item) {
      Object.defineProperty(record, key, { value: revived, enumerable: true, writable: true });
    }
  }
  return record;
}

// ---------------------------------------------------------------------------------------------------------

export const CODEC_NAMES: readonly CodecName[] = ["msgpack", "json"];

/** A new codec instance (codecs keep scratch state, so each mesh owns its own). */
export function createCodec(name: CodecName): MeshCodec {
  switch (name) {
    case "msgpack":
      return createMsgpackCodec();
    case "json":
      return createJsonCodec();
    default:
      throw new AetherError("bad_request", `mesh codec: unknown codec "${String(name)}" (msgpack or json)`);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
