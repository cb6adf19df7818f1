/**
 * The cluster mesh: authenticated WebSocket connections between node processes, carrying consensus,
 * invocation and metrics messages on named channels. See mesh.ts for the delivery, batching, backpressure and
 * liveness rules and README.md for the measured figures behind the defaults.
 */
export {
  DEFAULT_CODEC,
  Mesh,
  MESH_DEFAULTS,
  MESH_PATH,
  type MeshConfig,
  type MeshLogger,
  type MeshPeerAddress,
  type MeshStats,
  type MessageHandler,
  type PeerDownHandler,
  type PeerStats,
  type PeerUpHandler,
} from "./mesh.ts";
export { CODEC_NAMES, type CodecName, createCodec, type MeshCodec } from "./codec.ts";
/**
 * The dialing side's WebSocket client (the npm `ws` with TCP_NODELAY) and the environment variables it reads
 * when it loads: a process that imports the mesh grants them with `--allow-env`. Benchmarks dial with it to
 * measure the raw client as a baseline.
 */
export { DIALER_ENV_VARS, dialWebSocket, type MeshSocket } from "./_dialer.ts";
export { PeerQueries, type PeerQueryOptions, type QueryMesh } from "./peer_query.ts";
