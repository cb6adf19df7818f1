/**
 * The URL shortener: shorten a URL to a code, resolve a code (an HTTP 302 redirect), and see a link's clicks.
 *
 * Links live in the durable `kv` service (the replicated store: 3 copies, acknowledged once 2 have it on
 * disk), with the `cache` service in front for resolves and, in front of both, the links this instance has
 * seen (known_links.ts: exact, since a link never changes). Click counts are an atomic `add` on the store,
 * group-committed per instance (clicks.ts: concurrent resolves share one `kv.batch` call, and each waits for
 * the batch that carries its click). So any node answers for any link, and a node that dies loses no link and
 * no acknowledged click.
 */

import { type Context, defineSlice, respond, SliceError } from "@aether/slices";
import { ClickCounter } from "./clicks.ts";
import { KnownLinks } from "./known_links.ts";

/** A request that is malformed; the message names the field. 400. */
export class InvalidLink extends SliceError {}
/** No link has that code. 404. */
export class LinkNotFound extends SliceError {}

const CODE_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_LENGTH = 7;
const MAX_URL_LENGTH = 2048;
/** How long a resolved link stays in the cache in front of the store. */
const CACHE_TTL_MS = 60_000;

interface Link {
  code: string;
  url: string;
  createdAt: string;
}

/** This instance's links and click batches: module state, shared by the instance's concurrent requests. */
const known = new KnownLinks();
const clicks = new ClickCounter();

function newCode(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(CODE_LENGTH));
  return [...bytes].map((b) => CODE_ALPHABET[b % CODE_ALPHABET.length]).join("");
}

function parseUrl(request: unknown): string {
  const url = (request as { url?: unknown } | null)?.url;
  if (typeof url !== "string" || url.length > MAX_URL_LENGTH) {
    throw new InvalidLink(`url must be a string of at most ${MAX_URL_LENGTH} characters`, {
      details: { field: "url" },
    });
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidLink(`url is not an absolute URL: ${JSON.stringify(url.slice(0, 100))}`, {
      details: { field: "url" },
    });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new InvalidLink(`url must be http or https, not ${parsed.protocol}`, { details: { field: "url" } });
  }
  return parsed.href;
}

function parseCode(request: unknown): string {
  const code = (request as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !/^[a-zA-Z0-9]{1,32}$/.test(code)) {
    throw new InvalidLink("code must be 1-32 letters or digits", { details: { field: "code" } });
  }
  return code;
}

/** A code's URL from the cache, else the kv (then cached); remembered by this instance either way. */
async function lookUp(code: string, ctx: Context<unknown, unknown>): Promise<string> {
  const cache = ctx.infra.cache("links");
  let url = await cache.get<string>(code);
  if (url === undefined) {
    const entry = await ctx.infra.kv("links").get<{ url: string }>(code);
    if (entry === null) throw new LinkNotFound(`no link has the code ${code}`);
    url = entry.value.url;
    await cache.putWithTtl(code, url, CACHE_TTL_MS);
  }
  known.remember(code, url);
  return url;
}

export default defineSlice({
  coordinates: "org.example.links:links:1.0.0",
  requires: ["kv", "cache"],
  http: {
    prefix: "/u",
    routes: {
      shorten: "POST /links",
      resolve: "GET /r/{code}",
      stats: "GET /links/{code}",
    },
    errors: { 400: ["Invalid*"], 404: ["*NotFound"] },
  },
  methods: {
    /** Stores a new link under a fresh code (compare-and-set "only if absent", so codes never collide). */
    async shorten(request: { url: string }, ctx) {
      const url = parseUrl(request);
      const links = ctx.infra.kv("links");
      for (let attempt = 0; attempt < 5; attempt++) {
        const link: Link = { code: newCode(), url, createdAt: new Date().toISOString() };
        try {
          await links.put(link.code, { ...link }, { ifVersion: 0 });
          known.remember(link.code, url);
          return respond({ status: 201, body: { ...link, short: `/u/r/${link.code}` } });
        } catch (e) {
          if ((e as Error).name !== "VersionMismatch") throw e;
        }
      }
      throw new SliceError("could not find a free code in 5 attempts");
    },

    /** Redirects to the link's URL once its click is counted. */
    async resolve(request: { code: string }, ctx) {
      const code = parseCode(request);
      const url = known.get(code) ?? await lookUp(code, ctx);
      await clicks.count(ctx.infra.kv("clicks"), code);
      return respond({ status: 302, headers: { location: url }, body: { url } });
    },

    /** The link and how often it was resolved. */
    async stats(request: { code: string }, ctx) {
      const code = parseCode(request);
      const entry = await ctx.infra.kv("links").get<{ url: string; createdAt: string }>(code);
      if (entry === null) throw new LinkNotFound(`no link has the code ${code}`);
      const clicks = await ctx.infra.kv("clicks").get<number>(code);
      return { code, url: entry.value.url, createdAt: entry.value.createdAt, clicks: clicks?.value ?? 0 };
    },
  },
});
