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
