/** The ranges node settings name in their errors (`aether config setting NAME VALUE` refused). */

import assert from "node:assert/strict";
import { NODE_SETTINGS, settingRange } from "./config.ts";

Deno.test("settings: every setting's range reads as a range an operator can act on (no 'undefined')", () => {
  for (const [name, setting] of Object.entries(NODE_SETTINGS)) {
    const range = settingRange(setting);
    assert.doesNotMatch(range, /undefined|NaN/, `${name}: "${range}"`);
  }
  assert.equal(settingRange(NODE_SETTINGS["invoke.maxAttempts"]), "an integer from 1 to 20");
  assert.equal(settingRange(NODE_SETTINGS["log.level"]), "one of debug, info, warn, error");
  // outbound.allow is text (a host list); it was described as "an integer from undefined to undefined".
  assert.match(settingRange(NODE_SETTINGS["outbound.allow"]), /^text: hosts slices may call/);
});
