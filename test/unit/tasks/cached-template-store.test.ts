import { describe, expect, it } from "vitest";
import { CachedTemplateStore } from "../../../lib/tasks/cached-template-store.js";
import { MemoryTemplateStore } from "../../support/fakes.js";
import { template } from "../authz/fixtures.js";

describe("CachedTemplateStore", () => {
  it("serves a read template from memory for 5 s, then reads the store again", async () => {
    let now = 1_000_000;
    const inner = new MemoryTemplateStore([template("reports-read")]);
    const cache = new CachedTemplateStore(inner, { now: () => now });
    await cache.get("reports-read");
    await cache.get("reports-read");
    expect(inner.callsOf("get")).toHaveLength(1);
    // Another process changes it: seen once the entry is 5 s old.
    inner.templates.set("reports-read", template("reports-read", { description: "changed" }));
    now += 4_999;
    expect((await cache.get("reports-read"))?.description).toBeUndefined();
    now += 1;
    expect((await cache.get("reports-read"))?.description).toBe("changed");
    expect(inner.callsOf("get")).toHaveLength(2);
  });

  it("takes its own writes at once, remembers an unknown name briefly, and never a failed read", async () => {
    const inner = new MemoryTemplateStore();
    const cache = new CachedTemplateStore(inner, { now: () => 0 });
    expect(await cache.get("new-one")).toBeUndefined();
    await cache.put(template("new-one"));
    expect((await cache.get("new-one"))?.name).toBe("new-one");
    inner.fail(new Error("DynamoDB down"), "get");
    await expect(cache.get("other")).rejects.toThrow("DynamoDB down");
    expect(await cache.get("other")).toBeUndefined();
    expect(inner.callsOf("get").filter(([name]) => name === "other")).toHaveLength(2);
  });
});
