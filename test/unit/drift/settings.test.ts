import { describe, expect, it } from "vitest";
import { cidrList, isCidr } from "../../../lib/domain/cidr.js";
import { lintTemplate } from "../../../lib/domain/render.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { reportsTemplate } from "../../fixtures/cloudtrail/task.js";

describe("template drift settings", () => {
  it("are optional: a template without them parses without them", () => {
    expect(reportsTemplate().drift).toBeUndefined();
  });

  it("fill the defaults of what they leave out, and pass lint", () => {
    const template = reportsTemplate({ drift: { sourceIps: ["203.0.113.0/24"] } });
    expect(template.drift).toEqual({
      accessDeniedBurst: { count: 5, windowSeconds: 60 },
      offPolicyActions: "revoke",
      sourceIps: ["203.0.113.0/24"],
    });
    expect(() => lintTemplate(template)).not.toThrow();
  });

  it("refuse unknown fields, bad modes, bad ranges and bad counts, naming the field", () => {
    const parse = (drift: unknown) => () => parseTemplate({ ...reportsTemplate(), drift });
    expect(parse({ offPolicyActions: "ignore" })).toThrow(/drift\.offPolicyActions/);
    expect(parse({ sourceIps: ["10.0.0.0/33"] })).toThrow(/drift\.sourceIps\.0: must be CIDR notation/);
    expect(parse({ sourceIps: ["office"] })).toThrow(/drift\.sourceIps\.0/);
    expect(parse({ accessDeniedBurst: { count: 0, windowSeconds: 60 } })).toThrow(
      /drift\.accessDeniedBurst\.count/,
    );
    expect(parse({ revoke: true })).toThrow(/drift/);
  });
});

describe("cidr", () => {
  it("tells CIDR blocks from other text", () => {
    expect(["203.0.113.0/24", "10.0.0.1/32", "2001:db8::/32", "::/0"].every(isCidr)).toBe(true);
    expect(["203.0.113.0", "203.0.113.0/33", "2001:db8::/129", "a.b.c.d/8", "10.0.0.0/8 "].some(isCidr)).toBe(
      false,
    );
  });

  it("matches IPv4, IPv6 and IPv4-mapped IPv6 addresses, never host names", () => {
    const within = cidrList(["203.0.113.0/24", "2001:db8::/32"]);
    expect(within("203.0.113.200")).toBe(true);
    expect(within("::ffff:203.0.113.7")).toBe(true);
    expect(within("2001:db8:1::1")).toBe(true);
    expect(within("203.0.114.1")).toBe(false);
    expect(within("2001:db9::1")).toBe(false);
    expect(within("s3.amazonaws.com")).toBe(false);
  });
});
