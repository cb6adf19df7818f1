/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * The page's shell, rendered to HTML at build time (build.ts) and hydrated in the browser island by island:
 * each `data-island` element is one island (client.tsx), and islands share state through the signals of
 * state.ts. The first paint is this HTML: the header and the login form, before any script runs.
 */

import type { ComponentChildren } from "preact";
import { LiveBadge, Nav, Page } from "./app.tsx";

export const ISLANDS = { nav: Nav, live: LiveBadge, page: Page } as const;
export type IslandName = keyof typeof ISLANDS;

function Island(
  { name, tag = "div", children }: { name: IslandName; tag?: "div" | "main"; children: ComponentChildren },
) {
  const Tag = tag;
  return (
    <Tag data-island={name} id={`island-${name}`} tabIndex={tag === "main" ? -1 : undefined}>{children}</Tag>
  );
}

export function Shell() {
  return (
    <>
      <a class="skip" href="#island-page">Skip to content</a>
      <header class="top">
        <span class="brand">Aether</span>
        <Island name="nav">
          <Nav />
        </Island>
        <Island name="live">
          <LiveBadge />
        </Island>
      </header>
      <Island name="page" tag="main">
        <Page />
      </Island>
    </>
  );
}
