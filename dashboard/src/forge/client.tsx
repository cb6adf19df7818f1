/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/** The browser entry of Forge's console: hydrates the shell's island, reads Forge's state and load each second. */

import { hydrate } from "preact";
import { FORGE_POLL_MS, ForgeConsole, readForge } from "./console.tsx";
import { readLoad } from "./load.tsx";

const island = document.querySelector<HTMLElement>('[data-island="forge"]');
if (island) hydrate(<ForgeConsole />, island);

const poll = async () => {
  await Promise.all([readForge(), readLoad()]);
  setTimeout(poll, FORGE_POLL_MS);
};
void poll();
