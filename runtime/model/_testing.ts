/** Helpers for the model's tests. */

import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";

/** Asserts that `fn` throws AetherError("bad_request") matching `pattern` (and naming `field` when given). */
export function badRequest(fn: () => unknown, pattern: RegExp, field?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AetherError, `expected an AetherError, got ${e}`);
    assert.equal(e.code, "bad_request");
    assert.match(e.message, pattern);
    if (field !== undefined) assert.equal(e.extra.field, field);
    return true;
  });
}
