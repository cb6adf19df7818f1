import assert from "node:assert/strict";
import { isOperatorWritable, operatorPrefixWriteError, operatorWriteError } from "./app.ts";

Deno.test("app: operators write only under app/; everything else is a 403 that names the namespace", () => {
  assert.equal(isOperatorWritable("app/feature-flags"), true);
  assert.equal(operatorWriteError("app/a/b/c"), undefined);
  for (const key of ["targets/g:a", "leader", "blueprints/g:a:1.0.0", "config/x", "app", "apps/x", "x", ""]) {
    assert.equal(isOperatorWritable(key), false, key);
    const error = operatorWriteError(key)!;
    assert.equal(error.code, "forbidden");
    assert.equal(error.status, 403);
    assert.match(error.message, /operators may write only keys under "app\/"/);
  }
  assert.match(
    operatorWriteError("targets/g:a")!.message,
    /belongs to the runtime \(namespace "targets\/"\)/,
  );
  assert.match(operatorWriteError("leader")!.message, /namespace "leader"/);
  assert.match(operatorWriteError("x")!.message, /is outside the operator namespace/);
  // A key under app/ that is not a valid key is a 400, not a 403.
  assert.equal(operatorWriteError("app/")?.status, 400);
  assert.equal(operatorWriteError("app/\u0000")?.status, 400);
  assert.equal(operatorPrefixWriteError("app/"), undefined);
  assert.equal(operatorPrefixWriteError("app/team/"), undefined);
  assert.equal(operatorPrefixWriteError("ap")?.status, 403);
  assert.equal(operatorPrefixWriteError("")?.status, 403);
});
