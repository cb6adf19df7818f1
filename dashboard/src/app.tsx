/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * The islands: navigation, the live-connection badge and the page area (login, or the page the location's
 * hash names). Pages read the shared signals of state.ts; actions call the API and show its answer.
 */

import { signal } from "@preact/signals";
import { useState } from "preact/hooks";
import { caller, lastError, liveMode, login, loginError, logout, updatedAt } from "./state.ts";
import { Overview } from "./pages/overview.tsx";
import { Slices } from "./pages/slices.tsx";
import { Deployments } from "./pages/deployments.tsx";
import { Invocations } from "./pages/invocations.tsx";
import { Alerts } from "./pages/alerts.tsx";
import { Controller } from "./pages/controller.tsx";
import { Data } from "./pages/data.tsx";
import { Access } from "./pages/access.tsx";
import { Logs } from "./pages/logs.tsx";

export const PAGES = [
  { id: "overview", title: "Overview", component: Overview },
  { id: "slices", title: "Slices", component: Slices },
  { id: "invocations", title: "Invocations", component: Invocations },
  { id: "alerts", title: "Alerts", component: Alerts },
  { id: "deployments", title: "Deployments", component: Deployments },
  { id: "controller", title: "Controller", component: Controller },
  { id: "data", title: "Data", component: Data },
  { id: "logs", title: "Logs", component: Logs },
  { id: "access", title: "Access", component: Access },
] as const;

export type PageId = (typeof PAGES)[number]["id"];

/** The page the hash names (`#/slices`); the overview for anything else. */
export function pageOf(hash: string): PageId {
  const id = hash.replace(/^#\/?/, "");
  return PAGES.find((p) => p.id === id)?.id ?? "overview";
}

export const route = signal<PageId>("overview");

export function Nav() {
  return (
    <nav aria-label="Pages">
      <ul>
        {PAGES.map((p) => (
          <li key={p.id}>
            <a href={`#/${p.id}`} aria-current={route.value === p.id ? "page" : undefined}>{p.title}</a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

export function LiveBadge() {
  const who = caller.value;
  if (!who) return <span class="live off">signed out</span>;
  const mode = liveMode.value;
  const at = updatedAt.value;
  return (
    <span class="session">
      <span
        class={`live ${mode}`}
        data-testid="live-mode"
        title={at ? `updated ${new Date(at).toLocaleTimeString()}` : ""}
      >
        {mode === "socket" ? "live" : mode === "polling" ? "polling" : "offline"}
      </span>
      <span class="who" data-testid="who">{who.tokenName} ({who.role})</span>
      <button type="button" class="link" onClick={logout}>Sign out</button>
    </span>
  );
}

export function Page() {
  if (!caller.value) return <Login />;
  const page = PAGES.find((p) => p.id === route.value) ?? PAGES[0];
  const Component = page.component;
  return (
    <>
      <h1>{page.title}</h1>
      {lastError.value && <p class="error" role="alert">{lastError.value}</p>}
      <Component />
    </>
  );
}

function Login() {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    await login(text);
    setBusy(false);
  };
  return (
    <section class="login">
      <h1>Sign in</h1>
      <p>
        Paste a token (<code>aether token create NAME --role viewer|operator|admin</code>{" "}
        prints one). It is kept for this tab only and sent to this node's API on every call.
      </p>
      <form onSubmit={submit}>
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={busy}>Sign in</button>
      </form>
      {loginError.value && <p class="error" role="alert">{loginError.value}</p>}
    </section>
  );
}
