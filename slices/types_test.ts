/**
 * The author experience at the type level: `deno test` type-checks this file, and every `@ts-expect-error`
 * below must still be an error, so a loosened type fails the run.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type ApiOf, type ClientOf, defineSlice, respond, slice } from "./mod.ts";

interface PriceRequest {
  sku: string;
  quantity: number;
}

const pricing = defineSlice({
  coordinates: "org.example:pricing:1.0.0",
  methods: {
    calculatePrice(req: PriceRequest) {
      return { total: req.quantity * 2 };
    },
    withStatus(_req: { id: string }) {
      return respond({ status: 202, body: { queued: true } });
    },
  },
});

type PricingApi = ApiOf<typeof pricing>;

const shop = defineSlice({
  coordinates: "org.example:shop:1.0.0",
  config: {
    greeting: { type: "string", default: "hi" },
    limit: { type: "integer", optional: true },
    mode: { type: "string", default: "fast", enum: ["fast", "safe"] },
    hosts: { type: "string[]", default: [] },
  },
  calls: { pricing: slice<PricingApi>("org.example:pricing", "^1.0.0") },
  http: {
    prefix: "/shop",
    routes: { buy: "POST /buy" },
  },
  start(ctx) {
    const greeting: string = ctx.config.greeting;
    return greeting;
  },
  methods: {
    async buy(req: { sku: string }, ctx) {
      const greeting: string = ctx.config.greeting;
      const limit: number | undefined = ctx.config.limit;
      const mode: "fast" | "safe" = ctx.config.mode;
      const hosts: readonly string[] = ctx.config.hosts;
      const price = await ctx.slices.pricing.calculatePrice({ sku: req.sku, quantity: 1 });
      const total: number = price.total;
      // respond() wrappers are unwrapped for callers.
      const queued: boolean = (await ctx.slices.pricing.withStatus({ id: "1" })).queued;
      ctx.slices.pricing.calculatePrice.fireAndForget({ sku: req.sku, quantity: 1 }, { timeoutMs: 100 });
      ctx.log.info("bought", { sku: req.sku });
      // @ts-expect-error the request must match the callee's type
      await ctx.slices.pricing.calculatePrice({ sku: 1 });
      // @ts-expect-error no such method on the callee
      ctx.slices.pricing.refund;
      // @ts-expect-error no such dependency
      ctx.slices.inventory;
      // @ts-expect-error no such config field
      ctx.config.colour;
      // @ts-expect-error config is read-only
      ctx.config.greeting = "x";
      return { greeting, limit, mode, hosts, total, queued, requestId: ctx.requestId };
    },
  },
});

/** Type errors only: never called (defineSlice would also refuse these at run time). */
export function _typeErrors() {
  defineSlice({
    coordinates: "org.example:x:1.0.0",
    http: {
      prefix: "/x",
      // @ts-expect-error routes may only name methods of this slice
      routes: { doIt: "POST /", other: "GET /" },
    },
    methods: { doIt: () => null },
  });
  defineSlice({
    coordinates: "org.example:x:1.0.0",
    // @ts-expect-error a route is "METHOD /path"
    http: { prefix: "/x", routes: { doIt: "FETCH /" } },
    methods: { doIt: () => null },
  });
  defineSlice({
    coordinates: "org.example:x:1.0.0",
    // @ts-expect-error config fields have a known type
    config: { n: { type: "decimal" } },
    methods: { doIt: () => null },
  });
}

Deno.test("ApiOf and ClientOf give typed clients (checked at compile time)", () => {
  type ShopApi = ApiOf<typeof shop>;
  const call: ShopApi["buy"] = (req) =>
    Promise.resolve({
      greeting: req.sku,
      limit: undefined,
      mode: "fast",
      hosts: [],
      total: 1,
      queued: true,
      requestId: "r",
    });
  type Client = ClientOf<PricingApi>;
  const method: keyof Client = "calculatePrice";
  assertEquals([typeof call, method, shop.methods.buy.length], ["function", "calculatePrice", 2]);
});
