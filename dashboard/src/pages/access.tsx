/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Access: who this tab is signed in as; for admins the tokens (create, with the secret shown once, and
 * revoke); for operators and admins the audit log of mutating calls.
 */

import { useState } from "preact/hooks";
import { del, get, post } from "../api.ts";
import { caller, canOperate, isAdmin } from "../state.ts";
import { clock, Outcome, useAction, useLoad } from "../ui.tsx";

interface TokenItem {
  id: string;
  name: string;
  role: string;
  createdAt?: string;
  expiresAt?: string | null;
  revokedAt?: string | null;
  createdBy?: string | null;
}

interface AuditItem {
  time: number;
  node: string;
  tokenName?: string;
  role?: string;
  method: string;
  path: string;
  target?: string;
  status: number;
  requestId: string;
}

export function Access() {
  const who = caller.value!;
  return (
    <>
      <section class="card">
        <h2>This session</h2>
        <p>
          Signed in with token <code>{who.tokenId}</code> ("{who.tokenName}"), role{" "}
          <strong>{who.role}</strong>. {who.role === "viewer"
            ? "Viewers see everything but change nothing."
            : who.role === "operator"
            ? "Operators change what runs; tokens need an admin."
            : "Admins also manage tokens."}
        </p>
      </section>
      {isAdmin.value && <Tokens />}
      {canOperate.value && <Audit />}
    </>
  );
}

function Tokens() {
  const list = useLoad(() => get<{ items: TokenItem[] }>("/tokens"));
  const [name, setName] = useState("");
  const [role, setRole] = useState("viewer");
  const [ttl, setTtl] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const [state, run] = useAction();
  const create = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const body: Record<string, string> = { name, role };
      if (ttl.trim() !== "") body.ttl = ttl.trim();
      const created = await post<TokenItem & { token: string }>("/tokens", body);
      setSecret(created.token);
      list.reload();
      return `created ${created.id} (${created.role})`;
    });
  };
  return (
    <section class="card" aria-labelledby="tokens-title">
      <h2 id="tokens-title">Tokens</h2>
      <form class="inline" onSubmit={create}>
        <label for="token-name">Name</label>
        <input id="token-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <label for="token-role">Role</label>
        <select id="token-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value)}>
          <option value="viewer">viewer</option>
          <option value="operator">operator</option>
          <option value="admin">admin</option>
        </select>
        <label for="token-ttl">Lifetime</label>
        <input
          id="token-ttl"
          placeholder="e.g. 12h (empty: none)"
          value={ttl}
          onInput={(e) => setTtl((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={state.busy}>Create</button>
      </form>
      <Outcome state={state} />
      {secret && (
        <p class="ok" role="status">
          The new token, shown only now: <code data-testid="new-token">{secret}</code>
        </p>
      )}
      {list.error && <p class="error" role="alert">{list.error}</p>}
      {list.data && (
        <table data-testid="tokens">
          <thead>
            <tr>
              <th scope="col">Id</th>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Expires</th>
              <th scope="col">State</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.data.items.map((t) => <TokenRow key={t.id} token={t} onChange={list.reload} />)}
          </tbody>
        </table>
      )}
    </section>
  );
}

function TokenRow({ token, onChange }: { token: TokenItem; onChange: () => void }) {
  const [state, run] = useAction();
  return (
    <tr>
      <td>
        <code>{token.id}</code>
      </td>
      <td>{token.name}</td>
      <td>{token.role}</td>
      <td>{token.expiresAt ?? "never"}</td>
      <td>{token.revokedAt ? `revoked ${token.revokedAt}` : "active"}</td>
      <td>
        {!token.revokedAt && token.id !== caller.value?.tokenId && (
          <button
            type="button"
            class="danger"
            aria-label={`Revoke ${token.name}`}
            onClick={() =>
              run(async () => {
                await del(`/tokens/${encodeURIComponent(token.id)}`);
                onChange();
                return `revoked ${token.id}`;
              })}
          >
            Revoke
          </button>
        )}
        <Outcome state={state} />
      </td>
    </tr>
  );
}

function Audit() {
  const list = useLoad(() => get<{ items: AuditItem[] }>("/audit?limit=100"));
  return (
    <section class="card" aria-labelledby="audit-title">
      <h2 id="audit-title">Audit log</h2>
      <button type="button" onClick={list.reload}>Reload</button>
      {list.error && <p class="error" role="alert">{list.error}</p>}
      {list.data && (
        <table data-testid="audit">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Who</th>
              <th scope="col">Call</th>
              <th scope="col">Target</th>
              <th scope="col">Status</th>
              <th scope="col">Node</th>
            </tr>
          </thead>
          <tbody>
            {[...list.data.items].reverse().map((a) => (
              <tr key={a.requestId}>
                <td>{clock(a.time)}</td>
                <td>{a.tokenName ?? "?"} ({a.role ?? "?"})</td>
                <td>
                  <code>{a.method} {a.path}</code>
                </td>
                <td>{a.target ?? ""}</td>
                <td>{a.status}</td>
                <td>{a.node}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
