/**
 * The application route table: which slice method serves an HTTP request.
 *
 * Routes come from `routes/{METHOD}{path}` records (published by the node deployment manager when an instance
 * activates, from its manifest's `fullPath`). A route path is `/`-separated segments, each literal text or a
 * whole `{param}`; a path that ends in `/` is a prefix route and also serves everything below it.
 *
 * Matching, per request path (a trailing `/` on the request is ignored, `//` never matches):
 * - segment by segment, a literal segment beats a parameter at the same depth, and an exact route beats a
 *   prefix route: the most specific route wins, which is the longest literal prefix (`/orders/special` beats
 *   `/orders/{id}`, `/orders/{id}` beats the prefix route `/orders/`, `/api/v1/` beats `/api/`);
 * - the HTTP method is part of the match: when some route matches the path but none for the request's
 *   method, the answer is "method not allowed" with the methods that would match (the server replies 405 with
 *   an `Allow` header), which tells a client more than a 404 would;
 * - parameter values are percent-decoded; a literal segment matches the decoded request segment.
 *
 * Pure and immutable: a new table is built when the route records change.
 */

export interface RouteDefinition {
  /** `GET`, `POST`, ... */
  httpMethod: string;
  /** The route path as registered: `/api/v1/orders/{id}`. */
  path: string;
  /** `group:artifact`. */
  slice: string;
  /** The slice method. */
  method: string;
  /** Nodes that registered the route (they run an instance serving it). */
  nodes: readonly string[];
  /** Query parameters the route declares (from the slice's manifest); others are ignored. */
  queryParams: readonly string[];
}

export type RouteMatch =
  | { kind: "found"; route: RouteDefinition; params: Record<string, string> }
  | { kind: "method_not_allowed"; allowed: string[] }
  | { kind: "not_found" };

interface TrieNode {
  literals: Map<string, TrieNode>;
  param?: TrieNode;
  /** Exact routes ending here, by HTTP method. */
  exact: Map<string, CompiledRoute>;
  /** Prefix routes (path ending in `/`) rooted here, by HTTP method. */
  prefix: Map<string, CompiledRoute>;
}

interface CompiledRoute {
  route: RouteDefinition;
  /** Parameter name by segment index. */
  params: Array<[index: number, name: string]>;
}

const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

function newNode(): TrieNode {
  return { literals: new Map(), exact: new Map(), prefix: new Map() };
}

export class RouteTable {
  readonly #root = newNode();
  readonly #routes: RouteDefinition[];

  constructor(routes: readonly RouteDefinition[]) {
    this.#routes = [...routes].sort((a, b) =>
      a.path < b.path ? -1 : a.path > b.path ? 1 : a.httpMethod < b.httpMethod ? -1 : 1
    );
    for (const route of this.#routes) this.#add(route);
  }

  static readonly EMPTY = new RouteTable([]);

  get size(): number {
    return this.#routes.length;
  }

  /** Every route, sorted by path then method. */
  list(): readonly RouteDefinition[] {
    return this.#routes;
  }

  match(httpMethod: string, pathname: string): RouteMatch {
    const segments = splitPath(pathname);
    if (!segments) return { kind: "not_found" };
    const allowed = new Set<string>();
    const found = this.#search(this.#root, segments, 0, httpMethod, allowed);
    if (found) {
      const params: Record<string, string> = {};
      for (const [index, name] of found.params) params[name] = segments[index];
      return { kind: "found", route: found.route, params };
    }
    if (allowed.size > 0) return { kind: "method_not_allowed", allowed: [...allowed].sort() };
    return { kind: "not_found" };
  }

  #add(route: RouteDefinition): void {
    const isPrefix = route.path.length > 1 && route.path.endsWith("/");
    const body = route.path === "/" ? "" : (isPrefix ? route.path.slice(1, -1) : route.path.slice(1));
    const parts = body === "" ? [] : body.split("/");
    const params: CompiledRoute["params"] = [];
    let node = this.#root;
    parts.forEach((part, index) => {
      const m = PARAM.exec(part);
      if (m) {
        params.push([index, m[1]]);
        node = node.param ??= newNode();
      } else {
        let next = node.literals.get(part);
        if (!next) node.literals.set(part, next = newNode());
        node = next;
      }
    });
    (isPrefix ? node.prefix : node.exact).set(route.httpMethod, { route, params });
  }

  /** Depth-first, most specific first; records the methods of routes that match the path but not the method. */
  #search(
    node: TrieNode,
    segments: string[],
    depth: number,
    method: string,
    allowed: Set<string>,
  ): CompiledRoute | undefined {
    if (depth === segments.length) {
      const exact = node.exact.get(method);
      if (exact) return exact;
      for (const m of node.exact.keys()) allowed.add(m);
    } else {
      const literal = node.literals.get(segments[depth]);
      if (literal) {
        const found = this.#search(literal, segments, depth + 1, method, allowed);
        if (found) return found;
      }
      if (node.param) {
        const found = this.#search(node.param, segments, depth + 1, method, allowed);
        if (found) return found;
      }
    }
    const prefix = node.prefix.get(method);
    if (prefix) return prefix;
    for (const m of node.prefix.keys()) allowed.add(m);
    return undefined;
  }
}

/** Decoded path segments, or undefined for a path that cannot match (`//`, bad percent-encoding). */
export function splitPath(pathname: string): string[] | undefined {
  if (!pathname.startsWith("/")) return undefined;
  let body = pathname.slice(1);
  if (body.endsWith("/")) body = body.slice(0, -1);
  if (body === "") return [];
  const raw = body.split("/");
  const out: string[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const segment = raw[i];
    if (segment === "") return undefined;
    if (segment.includes("%")) {
      try {
        out[i] = decodeURIComponent(segment);
      } catch {
        return undefined;
      }
    } else out[i] = segment;
  }
  return out;
}
