/**
 * Checks an artifact upload before anything touches the disk: the manifest is a valid slice manifest, the
 * bundle is JavaScript text that is exactly what the manifest describes (size and sha-256), the coordinates in
 * the URL (if any) are the manifest's, and the bundle fits the node's limit. Each refusal is an AetherError
 * whose problem document carries a `reason`:
 *
 * | reason                 | status | when                                                                  |
 * | ---------------------- | ------ | --------------------------------------------------------------------- |
 * | `not_a_slice`          | 400    | parts missing, bundle empty or not UTF-8 text, size differs from the manifest |
 * | `manifest_invalid`     | 400    | not JSON, or `validateManifest` problems (listed with their paths)     |
 * | `coordinates_mismatch` | 400    | the URL names other coordinates than the manifest                      |
 * | `hash_mismatch`        | 400    | the bundle's sha-256 differs from the manifest's or the declared one   |
 * | `too_large`            | 413    | the bundle is over the node's --artifact-max-bytes                     |
 */

import { AetherError, parseCoordinates } from "../core/mod.ts";
import { sha256Hex, type SliceManifest, validateManifest } from "../../slices/host.ts";

export type UploadProblem =
  | "not_a_slice"
  | "manifest_invalid"
  | "coordinates_mismatch"
  | "hash_mismatch"
  | "too_large";

export interface UploadInput {
  /** The manifest part as sent (JSON text). */
  manifestText: string | undefined;
  bundle: Uint8Array | undefined;
  maxBundleBytes: number;
  /** Coordinates named by the URL (`PUT /artifacts/{g:a:v}`). */
  urlCoordinates?: string;
  /** A sha-256 the client declared for the bundle (header `x-aether-sha256`), checked against the bytes. */
  declaredSha256?: string;
}

export interface CheckedUpload {
  manifest: SliceManifest;
  bundle: Uint8Array;
}

export function uploadError(reason: UploadProblem, message: string, extra: Record<string, unknown> = {}) {
  return new AetherError(reason === "too_large" ? "too_large" : "bad_request", message, { reason, ...extra });
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export async function checkUpload(input: UploadInput): Promise<CheckedUpload> {
  const { bundle, manifestText } = input;
  if (manifestText === undefined || bundle === undefined) {
    const missing = [manifestText === undefined ? "manifest" : "", bundle === undefined ? "bundle" : ""]
      .filter(Boolean).join(" and ");
    throw uploadError(
      "not_a_slice",
      `the upload has no ${missing} part: send multipart/form-data with a "manifest" part (the JSON that ` +
        `slice build wrote) and a "bundle" part (the .js file)`,
    );
  }
  if (bundle.length > input.maxBundleBytes) {
    throw uploadError(
      "too_large",
      `the bundle is ${bundle.length} bytes, over this node's limit of ${input.maxBundleBytes} bytes`,
      { sizeBytes: bundle.length, limitBytes: input.maxBundleBytes },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(manifestText);
  } catch (e) {
    throw uploadError("manifest_invalid", `the manifest is not JSON: ${(e as Error).message}`, {
      field: "(manifest)",
    });
  }
  let manifest: SliceManifest;
  try {
    manifest = validateManifest(json);
  } catch (e) {
    if (!(e instanceof AetherError)) throw e;
    throw uploadError("manifest_invalid", e.message, e.extra);
  }
  if (input.urlCoordinates !== undefined) {
    parseCoordinates(input.urlCoordinates, "artifact URL");
    if (input.urlCoordinates !== manifest.coordinates) {
      throw uploadError(
        "coordinates_mismatch",
        `the URL names ${input.urlCoordinates} but the manifest is for ${manifest.coordinates}`,
        { field: "coordinates" },
      );
    }
  }
  if (bundle.length === 0) throw uploadError("not_a_slice", "the bundle is empty");
  const nul = bundle.indexOf(0);
  if (nul >= 0) {
    throw uploadError("not_a_slice", `the bundle is not JavaScript text (a NUL byte at offset ${nul})`);
  }
  try {
    strictUtf8.decode(bundle);
  } catch {
    throw uploadError("not_a_slice", "the bundle is not JavaScript text (it is not valid UTF-8)");
  }
  if (bundle.length !== manifest.sizeBytes) {
    throw uploadError(
      "not_a_slice",
      `the bundle is ${bundle.length} bytes but the manifest describes one of ${manifest.sizeBytes} bytes: ` +
        `it is not the slice this manifest was built for`,
      { field: "sizeBytes" },
    );
  }
  const actual = await sha256Hex(bundle);
  if (input.declaredSha256 !== undefined && input.declaredSha256 !== actual) {
    throw uploadError(
      "hash_mismatch",
      `the bundle's sha-256 is ${actual} but the request declared ${input.declaredSha256} ` +
        `(x-aether-sha256): it was changed on the way`,
      { sha256: actual },
    );
  }
  if (actual !== manifest.sha256) {
    throw uploadError(
      "hash_mismatch",
      `the bundle's sha-256 is ${actual} but the manifest says ${manifest.sha256}`,
      { field: "sha256", sha256: actual },
    );
  }
  return { manifest, bundle };
}
