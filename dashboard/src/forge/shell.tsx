/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/** Forge's console page, rendered at build time; its one island hydrates in the browser. */

import { ForgeConsole } from "./console.tsx";

export function ForgeShell() {
  return (
    <>
      <header class="top">
        <span class="brand">Aether Forge</span>
      </header>
      <main data-island="forge" id="island-forge" tabIndex={-1}>
        <ForgeConsole />
      </main>
    </>
  );
}
