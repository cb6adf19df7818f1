/**
 * Ask-a-peer over the mesh: one query to one member on a named channel and its answer, with a timeout, a bound
 * on the queries waiting at once, and failure as soon as the peer goes down. Every member also serves the
 * queries the others send it on that channel. The cluster's log and trace views gather from every member this
 * way (nodes know each other's mesh addresses, not their API ports).
 *
 * Wire shape on the channel (the fields of query and answer are spread into the message):
 *   { t: "query", id, ...query }  →  { t: "answer", id, ...answer }  or  { t: "refused", id, reason }
 */

/** The part of the mesh this uses (Mesh has it). */
export interface QueryMesh {
  send(to: string, channel: string, message: unknown): boolean;
  onMessage(channel: string, handler: (from: string, message: unknown) => void): () => void;
  onPeerDown(handler: (id: string, reason: string) => void): () => void;
  isConnected(id: string): boolean;
}

export interface PeerQueryOptions<A> {
  mesh: QueryMesh;
  channel: string;
  /** What a query is called in errors ("log", "trace"). */
  noun: string;
  /** A member that has not answered within this long is reported as not answering. */
  timeoutMs: number;
  /** Queries this member waits on at once; beyond, a new query fails at once. */
  maxPending: number;
  /** Answers a peer's query (its fields, without `t` and `id`) from this member's data; throws to refuse. */
  serve(from: string, query: Record<string, unknown>): Record<string, unknown>;
  /** A peer's answer (its fields) as `A`, or undefined when it is malformed. */
  checkAnswer(answer: Record<string, unknown>): A | undefined;
  warn(message: string, fields?: Record<string, unknown>): void;
}

interface PendingQuery<A> {
  from: string;
  resolve(answer: A): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class PeerQueries<A> {
  readonly #o: PeerQueryOptions<A>;
  readonly #pending = new Map<number, PendingQuery<A>>();
  readonly #unsubscribe: (() => void)[];
  #nextId = 1;

  constructor(options: PeerQueryOptions<A>) {
    this.#o = options;
    this.#unsubscribe = [
      options.mesh.onMessage(options.channel, (from, message) => this.#receive(from, message)),
      options.mesh.onPeerDown((id, reason) => this.#failPeer(id, `${id} went down: ${reason}`)),
    ];
  }

  get pending(): number {
    return this.#pending.size;
  }

  stop(): void {
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(new Error("the node is stopping"));
  }

  /** Sends `query` to `node` and resolves with its answer; rejects when it is down, refuses or stays silent. */
  ask(node: string, query: Record<string, unknown>): Promise<A> {
    if (!this.#o.mesh.isConnected(node)) return Promise.reject(new Error(`${node} is not connected`));
    if (this.#pending.size >= this.#o.maxPending) {
      return Promise.reject(
        new Error(`${this.#o.maxPending} ${this.#o.noun} queries are waiting on peers already`),
      );
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.#settle(id)?.reject(new Error(`${node} did not answer within ${this.#o.timeoutMs} ms`)),
        this.#o.timeoutMs,
      );
      this.#pending.set(id, { from: node, resolve, reject, timer });
      if (!this.#o.mesh.send(node, this.#o.channel, { ...query, t: "query", id })) {
        this.#settle(id)?.reject(new Error(`${node} is not connected`));
      }
    });
  }

  #receive(from: string, raw: unknown): void {
    const message = raw as Record<string, unknown> | null;
    if (message === null || typeof message !== "object" || !Number.isInteger(message.id)) {
      this.#o.warn(`malformed ${this.#o.channel} message`, { from });
      return;
    }
    const { t, id, ...fields } = message as { t: unknown; id: number } & Record<string, unknown>;
    if (t === "query") return this.#serve(from, id, fields);
    const pending = this.#pending.get(id);
    if (!pending || pending.from !== from) return; // Answered after its timeout.
    this.#settle(id);
    const answer = t === "answer" ? this.#o.checkAnswer(fields) : undefined;
    if (answer !== undefined) pending.resolve(answer);
    else {
      pending.reject(new Error(t === "refused" ? String(fields.reason) : `${from} sent a malformed answer`));
    }
  }

  #serve(from: string, id: number, query: Record<string, unknown>): void {
    let answer: Record<string, unknown>;
    try {
      answer = { ...this.#o.serve(from, query), t: "answer", id };
    } catch (e) {
      answer = { t: "refused", id, reason: (e as Error).message };
    }
    this.#o.mesh.send(from, this.#o.channel, answer);
  }

  #settle(id: number): PendingQuery<A> | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    return pending;
  }

  #failPeer(node: string, reason: string): void {
    for (const [id, pending] of [...this.#pending]) {
      if (pending.from === node) this.#settle(id)?.reject(new Error(reason));
    }
  }
}
