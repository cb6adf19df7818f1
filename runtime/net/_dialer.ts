/**
 * The dialing side's WebSocket client: the npm package `ws` over node:net, with TCP_NODELAY set on its socket
 * before the first byte goes out.
 *
 * Why not Deno's own `new WebSocket()`: its TCP socket keeps Nagle's algorithm on, and Deno offers no way to
 * change that (`WebSocketStream` and a custom `Deno.createHttpClient` behave the same). A small frame sent
 * while an earlier one is still unacknowledged then waits for that ACK, and the peer's kernel delays a lone
 * ACK by about 40 ms. The mesh's traffic is exactly that pattern (a heartbeat, then a consensus message a few
 * milliseconds later, before the peer has sent anything back), so every consensus decision took 20-50 ms
 * instead of under one. The accepting side sets no-delay on the sockets it accepts (_accept.ts).
 * Figures and the comparison are in README.md ("Dialer client and Nagle's algorithm").
 *
 * Masking: frames carry an all-zero masking key (see `generateMask` below for why).
 *
 * Permissions: `ws` reads two environment variables when it loads (it asks whether to use optional native
 * add-ons), so a process that imports the mesh needs `--allow-env` for `DIALER_ENV_VARS` (or all of env).
 */

import { connect, type NetConnectOpts, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { WebSocket as UntypedWebSocket } from "ws";

/** The environment variables `ws` reads at load time; grant them with `--allow-env`. */
export const DIALER_ENV_VARS = ["WS_NO_BUFFER_UTIL", "WS_NO_UTF_8_VALIDATE"] as const;

/**
 * What the mesh uses of a WebSocket. Deno's server-side sockets have all of it; a dialed `ws` socket has it
 * through `ws`'s browser-style event API, plus `terminate()`, which drops the connection at once.
 */
export type MeshSocket =
  & Pick<
    WebSocket,
    | "readyState"
    | "bufferedAmount"
    | "binaryType"
    | "send"
    | "close"
    | "onopen"
    | "onmessage"
    | "onerror"
    | "onclose"
    | "addEventListener"
  >
  & { terminate?: () => void };

/** The part of `ws`'s client the dialer itself uses (the package ships no types). */
interface WsClient {
  on(event: "error", listener: (error: Error) => void): void;
}
type WsClientConstructor = new (url: string, options: Record<string, unknown>) => WsClient;
const NodeWebSocket = UntypedWebSocket as unknown as WsClientConstructor;

export interface DialOptions {
  /** Messages larger than this close the connection (code 1009), as Deno's client does at its own limit. */
  maxMessageBytes: number;
  /**
   * For a wss:// URL: trust only `ca`, present `cert`/`key` (the acceptor asks for them) and require the
   * acceptor's certificate to name `servername` (the peer's id).
   */
  tls?: { ca: string; cert: string; key: string; servername: string };
}

/**
 * Opens a client WebSocket to `url` whose TCP socket has no-delay. It behaves like a browser WebSocket for
 * everything in `MeshSocket` (events, `readyState`, `bufferedAmount`, `binaryType`); `terminate()` closes it
 * without the closing handshake, for a peer that will not answer one. Throws for a malformed URL.
 */
export function dialWebSocket(url: string, options: DialOptions): MeshSocket {
  const client = new NodeWebSocket(url, {
    // The acceptor negotiates no extensions; offering compression would only cost a header.
    perMessageDeflate: false,
    maxPayload: options.maxMessageBytes,
    // An all-zero masking key, which `ws` recognises and then skips the XOR pass. Masking exists so that
    // hostile script in a browser cannot steer the bytes an HTTP proxy on the path sees; mesh frames come from
    // our own processes, over a private network. Masking each frame in JavaScript cost a quarter of the
    // throughput of 64 KiB payloads (measured: 0.74x of Deno's client, 1.01x with this). Frames stay valid:
    // the mask bit is set and any server unmasks them as usual.
    generateMask: (mask: Uint8Array) => mask.fill(0),
    // No-delay from the first byte, so the HTTP upgrade and the auth messages are not held back either.
    // (`ws` sets it again itself when it takes the socket over after the upgrade.)
    createConnection: (netOptions: NetConnectOpts): Socket => {
      const tls = options.tls;
      const tcp = tls
        ? tlsConnect({ ...netOptions, ...tls, rejectUnauthorized: true } as ConnectionOptions)
        : connect(netOptions);
      tcp.setNoDelay(true);
      return tcp;
    },
  });
  // `ws` is an EventEmitter: an "error" with no listener would throw out of the event loop. The mesh's own
  // `onerror` handlers are replaced as a connection moves through its life, so one listener stays for good.
  client.on("error", () => {});
  return client as unknown as MeshSocket;
}
