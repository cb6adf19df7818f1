/**
 * Wire layout of the mesh's binary WebSocket frames (after the handshake, which uses text frames).
 *
 *   data:  [0x01][codec u8] entry*        entry: [channel length u8][channel ASCII][payload length u32][payload]
 *   ping:  [0x02][seq u32][sentAt f64]
 *   pong:  [0x03][seq u32][sentAt f64]    (echoes the ping)
 *
 * Integers are big-endian. A data frame carries one or more messages, each encoded on its own by the codec,
 * so a bad payload costs only its own message and the sender knows each message's size when it is queued.
 */

export const FRAME_DATA = 0x01;
export const FRAME_PING = 0x02;
export const FRAME_PONG = 0x03;

export const DATA_HEADER_BYTES = 2;
const HEARTBEAT_FRAME_BYTES = 13;

/** Channels: 1–32 characters, letters, digits and `._:-`. */
const CHANNEL = /^[A-Za-z0-9._:-]{1,32}$/;

export function isChannel(value: string): boolean {
  return CHANNEL.test(value);
}

/** Channel header bytes cached per channel name: channels are a handful of short constants. */
const channelHeaders = new Map<string, Uint8Array>();

function channelHeader(channel: string): Uint8Array {
  let header = channelHeaders.get(channel);
  if (header === undefined) {
    header = new Uint8Array(1 + channel.length);
    header[0] = channel.length;
    for (let i = 0; i < channel.length; i++) header[1 + i] = channel.charCodeAt(i);
    if (channelHeaders.size < 1024) channelHeaders.set(channel, header);
  }
  return header;
}

/**
 * One message ready to go into a data frame: [2 bytes reserved for the frame header][channel header][length]
 * [payload] in one array. The reserved bytes let a message that travels alone be sent as its own frame without
 * a second copy (see `singleEntryFrame`).
 */
export function buildEntry(channel: string, payload: Uint8Array): Uint8Array {
  const header = channelHeader(channel);
  const entry = new Uint8Array(DATA_HEADER_BYTES + header.byteLength + 4 + payload.byteLength);
  entry.set(header, DATA_HEADER_BYTES);
  const at = DATA_HEADER_BYTES + header.byteLength;
  const length = payload.byteLength;
  entry[at] = length >>> 24;
  entry[at + 1] = (length >>> 16) & 0xff;
  entry[at + 2] = (length >>> 8) & 0xff;
  entry[at + 3] = length & 0xff;
  entry.set(payload, at + 4);
  return entry;
}

/** Bytes an entry adds to a frame (its size without the reserved header). */
export function entryBodyBytes(entry: Uint8Array): number {
  return entry.byteLength - DATA_HEADER_BYTES;
}

/**
 * A frame holding only `entry`, made by writing the header into its reserved bytes. A broadcast shares one
 * entry between peers; they all write the same two bytes, so that is safe.
 */
export function singleEntryFrame(codecId: number, entry: Uint8Array): Uint8Array {
  entry[0] = FRAME_DATA;
  entry[1] = codecId;
  return entry;
}

/** Concatenates `entries[from, to)` into one data frame of `bodyBytes` (sum of entryBodyBytes) + header. */
export function buildDataFrame(
  codecId: number,
  entries: readonly Uint8Array[],
  from: number,
  to: number,
  bodyBytes: number,
): Uint8Array {
  if (to - from === 1) return singleEntryFrame(codecId, entries[from]);
  const frame = new Uint8Array(DATA_HEADER_BYTES + bodyBytes);
  frame[0] = FRAME_DATA;
  frame[1] = codecId;
  let pos = DATA_HEADER_BYTES;
  for (let i = from; i < to; i++) {
    const body = entries[i].subarray(DATA_HEADER_BYTES);
    frame.set(body, pos);
    pos += body.byteLength;
  }
  return frame;
}

export interface DecodedEntry {
  channel: string;
  payload: Uint8Array;
}

/**
 * Splits a data frame body into entries. Entries before a structural error are still returned; `error` says
 * what was wrong with the rest (which is dropped: there is no way to find the next entry boundary).
 */
export function splitEntries(frame: Uint8Array): { entries: DecodedEntry[]; error?: string } {
  const entries: DecodedEntry[] = [];
  let pos = DATA_HEADER_BYTES;
  while (pos < frame.byteLength) {
    const channelLength = frame[pos];
    if (channelLength === 0 || pos + 1 + channelLength + 4 > frame.byteLength) {
      return { entries, error: `entry header at byte ${pos} is truncated or names an empty channel` };
    }
    const channel = String.fromCharCode(...frame.subarray(pos + 1, pos + 1 + channelLength));
    pos += 1 + channelLength;
    const length = ((frame[pos] << 24) >>> 0) + (frame[pos + 1] << 16) + (frame[pos + 2] << 8) +
      frame[pos + 3];
    pos += 4;
    if (pos + length > frame.byteLength) {
      return {
        entries,
        error: `entry on channel "${channel}" claims ${length} bytes, the frame has ${
          frame.byteLength - pos
        }`,
      };
    }
    entries.push({ channel, payload: frame.subarray(pos, pos + length) });
    pos += length;
  }
  if (entries.length === 0) return { entries, error: "data frame without entries" };
  return { entries };
}

export function buildHeartbeat(
  kind: typeof FRAME_PING | typeof FRAME_PONG,
  seq: number,
  sentAt: number,
): Uint8Array {
  const frame = new Uint8Array(HEARTBEAT_FRAME_BYTES);
  const view = new DataView(frame.buffer);
  frame[0] = kind;
  view.setUint32(1, seq >>> 0);
  view.setFloat64(5, sentAt);
  return frame;
}

export function parseHeartbeat(frame: Uint8Array): { seq: number; sentAt: number } | undefined {
  if (frame.byteLength !== HEARTBEAT_FRAME_BYTES) return undefined;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const sentAt = view.getFloat64(5);
  if (!Number.isFinite(sentAt)) return undefined;
  return { seq: view.getUint32(1), sentAt };
}
