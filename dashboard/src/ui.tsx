/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/** Small pieces the pages share: an action's outcome line, a relative time, a loader for one API call. */

import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError } from "./api.ts";

export interface ActionState {
  busy: boolean;
  message: string | null;
  failed: boolean;
}

/** Runs an action and keeps its outcome for display: the API's own sentence on failure. */
export function useAction(): [ActionState, (what: () => Promise<string>) => Promise<void>] {
  const [state, setState] = useState<ActionState>({ busy: false, message: null, failed: false });
  const run = useCallback(async (what: () => Promise<string>) => {
    setState({ busy: true, message: null, failed: false });
    try {
      setState({ busy: false, message: await what(), failed: false });
    } catch (e) {
      setState({ busy: false, message: e instanceof ApiError ? e.message : String(e), failed: true });
    }
  }, []);
  return [state, run];
}

export function Outcome({ state }: { state: ActionState }) {
  if (!state.message) return null;
  return (
    <p class={state.failed ? "error" : "ok"} role={state.failed ? "alert" : "status"}>
      {state.message}
    </p>
  );
}

/** Loads one API answer on mount and on `reload()`; the error is the API's sentence. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (value) => live && (setData(value), setError(null)),
      (e) => live && setError(e instanceof ApiError ? e.message : String(e)),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

export function ago(time: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - time) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}

export function clock(time: number): string {
  return new Date(time).toLocaleTimeString([], { hour12: false });
}
