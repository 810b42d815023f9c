import { describe, expect, it } from "vitest";
import { CachedTemplateStore } from "../../../lib/tasks/cached-template-store.js";
import { MemoryTemplateStore } from "../../support/fakes.js";
import { template } from "../authz/fixtures.js";

describe("CachedTemplateStore: reading ahead", () => {
  it("answers from memory in an entry's last second and reads it again meanwhile, so no read is waited on", async () => {
    let now = 1_000_000;
    const inner = new MemoryTemplateStore([template("reports-read")]);
    const cache = new CachedTemplateStore(inner, { now: () => now });
    await cache.get("reports-read");
    inner.templates.set("reports-read", template("reports-read", { description: "changed" }));

    now += 3_999;
    expect((await cache.get("reports-read"))?.description).toBeUndefined();
    expect(inner.callsOf("get")).toHaveLength(1);
    now += 1;
    // In its last fifth: the entry answers, and the store is read in the background.
    expect((await cache.get("reports-read"))?.description).toBeUndefined();
    expect(inner.callsOf("get")).toHaveLength(2);
    await new Promise((done) => setImmediate(done));
    // The read-ahead entry answers from then on, past the first entry's 5 s, without another read.
    expect((await cache.get("reports-read"))?.description).toBe("changed");
    now += 1_500;
    expect((await cache.get("reports-read"))?.description).toBe("changed");
    expect(inner.callsOf("get")).toHaveLength(2);
  });

  it("keeps the entry when the read ahead fails, and reads the store once it expires", async () => {
    let now = 0;
    const inner = new MemoryTemplateStore([template("reports-read")]);
    const cache = new CachedTemplateStore(inner, { now: () => now });
    await cache.get("reports-read");
    inner.fail(new Error("DynamoDB down"), "get").fail(new Error("DynamoDB down"), "get");

    now = 4_500;
    expect((await cache.get("reports-read"))?.name).toBe("reports-read");
    await new Promise((done) => setImmediate(done));
    expect((await cache.get("reports-read"))?.name).toBe("reports-read");
    // A failed read ahead is tried again by the next read in the window; the entry still answers.
    expect(inner.callsOf("get")).toHaveLength(3);
    now = 5_000;
    expect((await cache.get("reports-read"))?.name).toBe("reports-read");
    expect(inner.callsOf("get")).toHaveLength(4);
  });
});
