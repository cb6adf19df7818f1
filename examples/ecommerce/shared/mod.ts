/**
 * Value types and parsers shared by the example's slices. Each parser takes raw JSON and the `Field` it came
 * from, and returns a typed value or throws the calling slice's own 400 error naming the field.
 */

export * from "./parse.ts";
export * from "./money.ts";
export * from "./ids.ts";
export * from "./items.ts";
export * from "./address.ts";
export * from "./card.ts";
export * from "./shipping.ts";
export * from "./kv_batcher.ts";
export * from "./group_commit.ts";
