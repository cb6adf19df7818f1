/**
 * The dashboard's only way to the cluster: the management API of the node that served the page, with the
 * token of this tab's session (the same calls and the same checks as the CLI). Errors are the API's problem
 * documents, whose `detail` says what was wrong and where; the page shows it as it is.
 */

import { signal } from "@preact/signals";

/** The tab's token: sessionStorage keeps it for this tab only, gone when the tab closes. */
const TOKEN_KEY = "aether.token";

export const token = signal<string | null>(null);

export function loadStoredToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function storeToken(value: string | null): void {
  token.value = value;
  try {
    if (value === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    // Storage refused (private mode with a quota of 0): the token lives in memory for this page only.
  }
}

/** An answer other than 2xx: the status and the problem document's detail (or the body's first line). */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly problem?: Record<string, unknown>) {
    super(message);
  }
}

/** Largest body the dashboard reads from one answer (a KV value or log page beyond it is cut, not hung on). */
const MAX_ANSWER_CHARS = 4 * 1024 * 1024;

export async function call<T>(method: string, path: string, body?: unknown, raw = false): Promise<T> {
  const headers: Record<string, string> = {};
  if (token.value !== null) headers.authorization = `Bearer ${token.value}`;
  let payload: BodyInit | undefined;
  if (body !== undefined) {
    if (raw) payload = String(body);
    else {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
  }
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, body: payload, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, `${method} ${path}: the node did not answer (${(e as Error).message})`);
  }
  const text = (await response.text()).slice(0, MAX_ANSWER_CHARS);
  if (!response.ok) throw errorOf(response.status, method, path, text);
  if (raw) return text as T;
  return (text === "" ? {} : JSON.parse(text)) as T;
}

function errorOf(status: number, method: string, path: string, text: string): ApiError {
  try {
    const problem = JSON.parse(text) as Record<string, unknown>;
    const detail = typeof problem.detail === "string" ? problem.detail : `${status}`;
    return new ApiError(status, detail, problem);
  } catch {
    return new ApiError(status, `${method} ${path}: ${status} ${text.split("\n")[0].slice(0, 200)}`);
  }
}

export const get = <T>(path: string) => call<T>("GET", path);
export const post = <T>(path: string, body: unknown) => call<T>("POST", path, body);
export const del = <T>(path: string) => call<T>("DELETE", path);
