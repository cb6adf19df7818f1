/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * The browser entry: hydrates each island of the server-rendered shell (shell.tsx), then follows the hash for
 * the page and signs in again with the tab's stored token, if any. Hydration first, state after: the shell was
 * rendered signed out on the overview, so the islands must start from that same state.
 */

import { hydrate } from "preact";
import { type IslandName, ISLANDS } from "./shell.tsx";
import { pageOf, route } from "./app.tsx";
import { loadStoredToken } from "./api.ts";
import { login } from "./state.ts";

for (const element of document.querySelectorAll<HTMLElement>("[data-island]")) {
  const name = element.dataset.island as IslandName;
  const Island = ISLANDS[name];
  if (Island) hydrate(<Island />, element);
}

route.value = pageOf(location.hash);
addEventListener("hashchange", () => {
  route.value = pageOf(location.hash);
  document.getElementById("island-page")?.focus({ preventScroll: true });
});

const stored = loadStoredToken();
if (stored !== null) void login(stored);
