/**
 * The partition proxy of the tests is Forge's link proxy (runtime/forge/link_proxy.ts): a loopback TCP proxy
 * that can partition the connections it carries and delay them, for tests of anything that talks over TCP.
 * Imported from its own file, not forge/mod.ts, so that low-layer tests (the mesh) do not load all of Forge.
 *
 *   const proxy = startPartitionProxy({ targetPort: mesh.port });
 *   other.setPeerAddress(mesh.self, "127.0.0.1", proxy.port);
 *   proxy.partition(); ... proxy.heal(); ... await proxy.close();
 */

export {
  type LinkProxy as PartitionProxy,
  startLinkProxy as startPartitionProxy,
} from "../../runtime/forge/link_proxy.ts";
