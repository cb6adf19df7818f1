/**
 * The repository's management API, mounted under /api/v1:
 *
 * | method and path                          | what                                                            |
 * | ---------------------------------------- | --------------------------------------------------------------- |
 * | `GET    /artifacts`                      | every published version: coordinates, sha-256, size, holders    |
 * | `POST   /artifacts[?replicas=N]`         | upload: multipart/form-data, parts `manifest` (JSON) and `bundle` |
 * | `PUT    /artifacts/{g:a:v}[?replicas=N]` | the same, and the URL's coordinates must be the manifest's       |
 * | `GET    /artifacts/{g:a}/versions`       | published versions of a slice, lowest first                     |
 * | `GET    /artifacts/{g:a:v}`              | the record (manifest, sha-256, size, holders) and `local`       |
 * | `GET    /artifacts/{g:a:v}/manifest`     | the manifest alone                                              |
 * | `GET    /artifacts/{g:a:v}/bundle`       | the bundle (verified; fetched from a holder if this node lacks it) |
 * | `DELETE /artifacts/{g:a:v}`              | delete (409 naming the users while anything uses the version)   |
 *
 * An upload answers 201 when it published the version and 200 when the same bundle was already published
 * under these coordinates; bad uploads get the 4xx of `_upload.ts` and store nothing. An optional header
 * `x-aether-sha256` declares the bundle's hash for an end-to-end check.
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AetherError, type Logger, parseCoordinates, problemResponse, toAetherError } from "../core/mod.ts";
import type { ArtifactRepository } from "./repository.ts";
import { checkUpload, uploadError } from "./_upload.ts";
import { boundaryOf, parseMultipart } from "./_multipart.ts";

/**
 * The group of the bundled infrastructure services (runtime/infra-host): only the runtime's bootstrap publishes
 * into it (the bundled bundles, by digest), so no user can place code there that the node would trust.
 */
export const RESERVED_GROUP = "aether.infra";

function refuseReserved(coordinates: string, what: "publish" | "delete"): void {
  if (coordinates.split(":")[0] !== RESERVED_GROUP) return;
  throw new AetherError(
    "forbidden",
    `${coordinates}: the group ${RESERVED_GROUP} is reserved for the infrastructure services bundled with the ` +
      `runtime; they are published by the runtime itself when a blueprint requires them ` +
      `(aether infra install <name>), and cannot be ${what === "publish" ? "published" : "deleted"} by hand`,
    { reason: "reserved_group", field: "coordinates" },
  );
}

/** Room for the manifest and the multipart framing on top of the bundle limit. */
const ENVELOPE_BYTES = 1024 * 1024;

function problem(c: Context, error: unknown): Response {
  return problemResponse(toAetherError(error), { fields: { instance: c.req.path } });
}

function replicasParam(c: Context): number | undefined {
  const text = c.req.query("replicas");
  if (text === undefined || text === "") return undefined;
  if (!/^[1-9]\d{0,2}$/.test(text)) {
    throw new AetherError(
      "bad_request",
      `query parameter replicas: "${text.slice(0, 40)}" is not a whole number from 1 to 999`,
      { field: "replicas", min: 1, max: 999 },
    );
  }
  return Number(text);
}

/** The manifest and bundle parts of a multipart upload (undefined for a missing part). */
async function uploadParts(
  c: Context,
): Promise<{ manifestText: string | undefined; bundle: Uint8Array | undefined }> {
  const type = c.req.header("content-type") ?? "";
  const boundary = boundaryOf(type);
  if (!boundary) {
    throw uploadError(
      "not_a_slice",
      `expected multipart/form-data with "manifest" and "bundle" parts, got content-type "${type || "none"}"`,
    );
  }
  const parts = parseMultipart(new Uint8Array(await c.req.arrayBuffer()), boundary);
  if (typeof parts === "string") {
    throw uploadError("not_a_slice", `the multipart body does not parse: ${parts}`);
  }
  const manifest = parts.get("manifest");
  return {
    manifestText: manifest === undefined ? undefined : new TextDecoder().decode(manifest),
    bundle: parts.get("bundle"),
  };
}

export function artifactRoutes(repository: ArtifactRepository, log: Logger): Hono {
  const app = new Hono();
  app.onError((error, c) => {
    if (!(error instanceof AetherError)) {
      log.error("artifact API handler failed", { path: c.req.path, error });
    }
    return problem(c, error);
  });

  app.get("/artifacts", (c) => c.json({ items: repository.list() }));

  const limit = bodyLimit({
    maxSize: repository.maxBundleBytes + ENVELOPE_BYTES,
    onError: (c) =>
      problem(
        c,
        uploadError(
          "too_large",
          `the upload is over this node's limit of ${repository.maxBundleBytes} bytes for a bundle`,
          { limitBytes: repository.maxBundleBytes },
        ),
      ),
  });

  const upload = async (c: Context, urlCoordinates?: string) => {
    const replicas = replicasParam(c);
    const parts = await uploadParts(c);
    const checked = await checkUpload({
      ...parts,
      maxBundleBytes: repository.maxBundleBytes,
      urlCoordinates,
      declaredSha256: c.req.header("x-aether-sha256")?.trim().toLowerCase() || undefined,
    });
    refuseReserved(checked.manifest.coordinates, "publish");
    const result = await repository.push(checked, { replicas });
    return c.json(result, result.created ? 201 : 200);
  };

  app.post("/artifacts", limit, (c) => upload(c));
  app.put("/artifacts/:coordinates", limit, (c) => upload(c, c.req.param("coordinates")));

  app.get("/artifacts/:base/versions", (c) => {
    const base = c.req.param("base");
    return c.json({ base, versions: repository.versions(base) });
  });

  const published = (c: Context) => {
    const coordinates = c.req.param("coordinates")!;
    parseCoordinates(coordinates, "artifact");
    const record = repository.record(coordinates);
    if (!record) {
      throw new AetherError("not_found", `artifact ${coordinates} is not published`, { coordinates });
    }
    return { coordinates, record };
  };

  app.get("/artifacts/:coordinates", async (c) => {
    const { coordinates, record } = published(c);
    return c.json({ coordinates, ...record, local: await repository.holdsLocally(record.sha256) });
  });

  app.get("/artifacts/:coordinates/manifest", (c) => c.json(published(c).record.manifest));

  app.get("/artifacts/:coordinates/bundle", async (c) => {
    const coordinates = c.req.param("coordinates");
    const read = await repository.bundle(coordinates);
    return new Response(read.bundle as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": "text/javascript; charset=utf-8",
        etag: `"${read.record.sha256}"`,
        "x-aether-coordinates": coordinates,
        "x-aether-sha256": read.record.sha256,
        "x-aether-source": read.source,
      },
    });
  });

  app.delete("/artifacts/:coordinates", async (c) => {
    const coordinates = c.req.param("coordinates");
    refuseReserved(coordinates, "delete");
    const { revision } = await repository.delete(coordinates);
    return c.json({ deleted: coordinates, revision });
  });

  return app;
}
