/**
 * The node process's entry module: what `nodeCommandArgs` runs (`deno run <narrow flags> runtime/node/entry.ts
 * <node flags>`). It runs the member in this process with the permissions the process was started with.
 * `aether node` (runtime/main.ts) never runs a member itself: it starts this entry as a child with the narrow
 * permissions of `nodePermissionFlags`, which is why this is a separate entry and not `main.ts node`.
 */

import { runNode } from "./main.ts";

Deno.exit(await runNode(Deno.args));
