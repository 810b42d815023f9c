import type { TaskTemplate } from "../domain/template.js";
import type { TemplateStore } from "./template-store.js";

/** How long a read template (or its absence) is served from memory. */
export const TEMPLATE_CACHE_MS = 5_000;

/** From this age on, a read entry is still served but read again in the background. */
const REFRESH_AHEAD = 0.8;

/**
 * A {@link TemplateStore} that keeps what it read for {@link TEMPLATE_CACHE_MS}: a vend or refresh
 * reads its template without a DynamoDB round trip while it is warm. Its own `put` takes effect at
 * once; a `put` by another process (the CLI, another Lambda) is seen within five seconds. An entry
 * in its last fifth is read again in the background while it still answers, so a steady stream
 * of vends never waits on the template read.
 */
export class CachedTemplateStore implements TemplateStore {
  readonly #inner: TemplateStore;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #entries = new Map<
    string,
    { readonly at: number; readonly value: Promise<TaskTemplate | undefined> }
  >();
  readonly #refreshing = new Set<string>();

  constructor(inner: TemplateStore, options: { readonly ttlMs?: number; readonly now?: () => number } = {}) {
    this.#inner = inner;
    this.#ttlMs = options.ttlMs ?? TEMPLATE_CACHE_MS;
    this.#now = options.now ?? Date.now;
  }

  get(name: string): Promise<TaskTemplate | undefined> {
    const now = this.#now();
    const cached = this.#entries.get(name);
    if (cached && now - cached.at < this.#ttlMs) {
      if (now - cached.at >= this.#ttlMs * REFRESH_AHEAD) this.#refreshAhead(name, cached, now);
      return cached.value;
    }
    const value = this.#inner.get(name);
    this.#entries.set(name, { at: now, value });
    // A failed read is not remembered: the next call asks the store again.
    value.catch(() => this.#entries.delete(name));
    return value;
  }

  /** Reads `name` again without anyone waiting; the entry is replaced only if it is still `cached`. */
  #refreshAhead(name: string, cached: { readonly at: number }, now: number): void {
    if (this.#refreshing.has(name)) return;
    this.#refreshing.add(name);
    this.#inner
      .get(name)
      .then(
        (template) => {
          if (this.#entries.get(name) === cached)
            this.#entries.set(name, { at: now, value: Promise.resolve(template) });
        },
        // A failed refresh leaves the entry to expire: the next read after that asks the store.
        () => undefined,
      )
      .finally(() => this.#refreshing.delete(name));
  }

  async put(template: TaskTemplate): Promise<void> {
    await this.#inner.put(template);
    this.#entries.delete(template.name);
  }

  list(): Promise<TaskTemplate[]> {
    return this.#inner.list();
  }
}
