/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/** The browser entry of Forge's console: hydrates the shell's island and reads Forge's state every second. */

import { hydrate } from "preact";
import { FORGE_POLL_MS, ForgeConsole, readForge } from "./console.tsx";

const island = document.querySelector<HTMLElement>('[data-island="forge"]');
if (island) hydrate(<ForgeConsole />, island);

const poll = async () => {
  await readForge();
  setTimeout(poll, FORGE_POLL_MS);
};
void poll();
