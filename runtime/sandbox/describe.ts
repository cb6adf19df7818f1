/**
 * Reading a bundle's definition: the bundle is loaded in a sandbox with no permissions at all, and the
 * definition it declares comes back (`slice build` derives the manifest from it). A bundle that still imports
 * anything from disk, npm or the network, or that exits while loading, fails here.
 */

import { AetherError } from "../core/mod.ts";
import type { RuntimeMessage, SliceDescription } from "../../slices/host.ts";
import type { SandboxChannel } from "./_channel.ts";
import { openProcessChannel } from "./_process_channel.ts";
import { openWorkerChannel } from "./_worker_channel.ts";
import type { IsolationMode, PermissionGrant } from "./policy.ts";

const NO_PERMISSIONS: PermissionGrant = Object.freeze({ net: [], env: [], denied: [] });

/** Loads a bundle in a sandbox with no permissions and returns what its definition declares. */
export function describeBundle(
  bundle: Uint8Array,
  options: { mode?: IsolationMode; timeoutMs?: number } = {},
): Promise<SliceDescription> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise<SliceDescription>((resolvePromise, reject) => {
    let channel: SandboxChannel | undefined;
    let settled = false;
    const finish = (result: { description?: SliceDescription; error?: AetherError }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      (channel?.close() ?? Promise.resolve()).then(() =>
        result.error ? reject(result.error) : resolvePromise(result.description!)
      );
    };
    const timer = setTimeout(
      () => finish({ error: new AetherError("timeout", `the bundle did not load within ${timeoutMs} ms`) }),
      timeoutMs,
    );
    const events = {
      message(message: RuntimeMessage) {
        if (message.t === "loaded") finish({ description: message.description });
        else if (message.t === "load-failed") {
          finish({
            error: new AetherError(
              "bad_request",
              `the bundle failed to load in a sandbox without permissions: ${message.error.name}: ${message.error.message}`,
            ),
          });
        } else if (message.t === "exit") {
          finish({
            error: new AetherError(
              "bad_request",
              `the bundle called Deno.exit(${message.code}) while loading`,
            ),
          });
        }
      },
      ended(_kind: string, message: string) {
        finish({ error: new AetherError("bad_request", `the bundle could not be loaded: ${message}`) });
      },
      undeliverable(_message: unknown, error: Error) {
        finish({
          error: new AetherError("internal", `the bundle could not be sent to the sandbox: ${error.message}`),
        });
      },
    };
    try {
      channel = options.mode === "worker"
        ? openWorkerChannel("slice build", NO_PERMISSIONS, events)
        : openProcessChannel({ name: "slice build", grant: NO_PERMISSIONS, memoryLimitMb: 512 }, events);
      channel.send({ t: "load", bundle, config: null, coordinates: "", instanceId: "build" });
    } catch (e) {
      finish({ error: new AetherError("internal", `could not start a sandbox: ${(e as Error).message}`) });
    }
  });
}
