import type { TaskTemplate } from "../domain/template.js";
import type { TemplateStore } from "./template-store.js";

/** How long a read template (or its absence) is served from memory. */
export const TEMPLATE_CACHE_MS = 5_000;

/**
 * A {@link TemplateStore} that keeps what it read for {@link TEMPLATE_CACHE_MS}: a vend or refresh
 * reads its template without a DynamoDB round trip while it is warm. Its own `put` takes effect at
 * once; a `put` by another process (the CLI, another Lambda) is seen within five seconds.
 */
export class CachedTemplateStore implements TemplateStore {
  readonly #inner: TemplateStore;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #entries = new Map<
    string,
    { readonly at: number; readonly value: Promise<TaskTemplate | undefined> }
  >();

  constructor(inner: TemplateStore, options: { readonly ttlMs?: number; readonly now?: () => number } = {}) {
    this.#inner = inner;
    this.#ttlMs = options.ttlMs ?? TEMPLATE_CACHE_MS;
    this.#now = options.now ?? Date.now;
  }

  get(name: string): Promise<TaskTemplate | undefined> {
    const now = this.#now();
    const cached = this.#entries.get(name);
    if (cached && now - cached.at < this.#ttlMs) return cached.value;
    const value = this.#inner.get(name);
    this.#entries.set(name, { at: now, value });
    // A failed read is not remembered: the next call asks the store again.
    value.catch(() => this.#entries.delete(name));
    return value;
  }

  async put(template: TaskTemplate): Promise<void> {
    await this.#inner.put(template);
    this.#entries.delete(template.name);
  }

  list(): Promise<TaskTemplate[]> {
    return this.#inner.list();
  }
}
