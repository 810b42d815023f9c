import { describe, expect, it } from "vitest";
import { taskCallOf } from "../../../lib/drift/cloudtrail.js";
import {
  burstFinding,
  type DeniedCall,
  driftSettingsOf,
  isTaskSession,
  offPolicyFinding,
  sourceIpFinding,
} from "../../../lib/drift/rules.js";
import { cloudTrailRecord, type FixtureName, type RecordChange } from "../../fixtures/cloudtrail/records.js";
import { fixtureTask, reportsTemplate } from "../../fixtures/cloudtrail/task.js";

function call(name: FixtureName, change: RecordChange = {}) {
  const parsed = taskCallOf(cloudTrailRecord(name, change));
  if (!parsed) throw new Error(`${name} is not a task call`);
  return parsed;
}

const defaults = driftSettingsOf(undefined);

describe("driftSettingsOf", () => {
  it("applies the contract's defaults to a template without drift settings", () => {
    expect(defaults).toEqual({
      accessDeniedBurst: { count: 5, windowSeconds: 60 },
      offPolicyActions: "revoke",
    });
    expect(driftSettingsOf(reportsTemplate({ drift: { offPolicyActions: "audit" } }))).toEqual({
      accessDeniedBurst: { count: 5, windowSeconds: 60 },
      offPolicyActions: "audit",
    });
  });
});

describe("isTaskSession", () => {
  it("accepts the task's own role and agent, refuses another role or source identity", () => {
    const task = fixtureTask();
    expect(isTaskSession(call("s3-get-object"), task)).toBe(true);
    expect(isTaskSession(call("s3-get-object", { sourceIdentity: "ci-agent" }), task)).toBe(false);
    expect(
      isTaskSession(call("s3-get-object", { roleArn: "arn:aws:iam::123456789012:role/jitv/deployer" }), task),
    ).toBe(false);
  });
});

describe("offPolicyFinding (rule a)", () => {
  const task = fixtureTask();

  it("passes an object read the session policy allows", async () => {
    expect(await offPolicyFinding(call("s3-get-object"), task, defaults)).toBeUndefined();
  });

  it("passes a call IAM never authorises (sts:GetCallerIdentity)", async () => {
    expect(await offPolicyFinding(call("sts-get-caller-identity"), task, defaults)).toBeUndefined();
  });

  it("flags a read of another bucket, naming the action and object", async () => {
    expect(await offPolicyFinding(call("s3-get-object-other-bucket"), task, defaults)).toEqual({
      rule: "off-policy-action",
      detail:
        "s3:GetObject on arn:aws:s3:::payroll-exports/2026/11/salaries.csv, arn:aws:s3:::payroll-exports is not allowed by the task's session policy",
      response: "revoke",
      eventIds: ["6b1c8a8e-2f0e-4d4b-9f61-0c6f1f2a0002"],
      actions: ["s3:GetObject"],
    });
  });

  it("flags a write to the allowed bucket (the template only reads)", async () => {
    const finding = await offPolicyFinding(call("s3-put-object-access-denied"), task, defaults);
    expect(finding).toMatchObject({ rule: "off-policy-action", actions: ["s3:PutObject"] });
  });

  it("flags management calls outside the policy, with no resource in the record", async () => {
    expect(await offPolicyFinding(call("iam-list-users-access-denied"), task, defaults)).toMatchObject({
      detail: "iam:ListUsers is not allowed by the task's session policy",
    });
    expect(await offPolicyFinding(call("ec2-describe-instances-unauthorized"), task, defaults)).toMatchObject(
      {
        actions: ["ec2:DescribeInstances"],
      },
    );
  });

  it("fails closed on an action the policy engine does not know", async () => {
    const unknown = { ...call("iam-list-users-access-denied"), eventName: "ListUnicorns" };
    expect(await offPolicyFinding(unknown, task, defaults)).toMatchObject({
      detail: "iam:ListUnicorns is unknown to the policy engine (invalid.action)",
      response: "revoke",
    });
  });

  it("only audits when the template says offPolicyActions: audit", async () => {
    const settings = { ...defaults, offPolicyActions: "audit" as const };
    expect(await offPolicyFinding(call("s3-put-object-access-denied"), task, settings)).toMatchObject({
      response: "audit",
    });
  });

  it("resolves policy variables from the task's session tags", async () => {
    const template = reportsTemplate({
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Action: ["s3:GetObject"],
            // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, not a template literal
            Resource: ["arn:aws:s3:::jitv-demo-reports/${aws:PrincipalTag/jitv:agent}/*"],
          },
        ],
      },
    });
    const tagged = fixtureTask(template);
    const own = call("s3-get-object");
    const mine = { ...own, resources: ["arn:aws:s3:::jitv-demo-reports/demo-agent/notes.txt"] };
    expect(await offPolicyFinding(mine, tagged, defaults)).toBeUndefined();
    expect(await offPolicyFinding(own, tagged, defaults)).toMatchObject({ rule: "off-policy-action" });
  });
});

describe("sourceIpFinding (rule c)", () => {
  const settings = { ...defaults, sourceIps: ["203.0.113.0/24", "2001:db8::/32"] };

  it("passes calls from the listed ranges, and every call when no ranges are set", () => {
    expect(sourceIpFinding(call("s3-get-object"), settings)).toBeUndefined();
    expect(
      sourceIpFinding(call("s3-get-object", { sourceIPAddress: "2001:db8::7" }), settings),
    ).toBeUndefined();
    expect(
      sourceIpFinding(call("s3-get-object", { sourceIPAddress: "198.51.100.9" }), defaults),
    ).toBeUndefined();
  });

  it("flags a call from elsewhere, but not a call an AWS service made for the session", () => {
    expect(sourceIpFinding(call("s3-get-object", { sourceIPAddress: "198.51.100.9" }), settings)).toEqual({
      rule: "source-ip",
      detail: "s3:GetObject from 198.51.100.9, outside the template's sourceIps",
      response: "revoke",
      eventIds: ["6b1c8a8e-2f0e-4d4b-9f61-0c6f1f2a0001"],
      actions: ["s3:GetObject"],
    });
    expect(
      sourceIpFinding(call("s3-get-object", { sourceIPAddress: "athena.amazonaws.com" }), settings),
    ).toBeUndefined();
  });
});

describe("burstFinding (rule b)", () => {
  const at = (second: number, id = `e${second}`): DeniedCall => ({
    eventId: id,
    eventTime: new Date(Date.UTC(2026, 10, 29, 20, 5, second)).toISOString(),
    action: "s3:PutObject",
  });

  it("finds 5 errors within 60 s, not 4", () => {
    const four = [0, 10, 20, 30].map((s) => at(s));
    expect(burstFinding(at(30), four, defaults)).toBeUndefined();
    const five = [...four, at(40)];
    expect(burstFinding(at(40), five, defaults)).toEqual({
      rule: "access-denied-burst",
      detail: "5 AccessDenied errors within 60 s (s3:PutObject)",
      response: "revoke",
      eventIds: ["e0", "e10", "e20", "e30", "e40"],
      actions: ["s3:PutObject"],
    });
  });

  it("does not join errors further apart than the window", () => {
    const spread = [0, 20, 40, 61, 62].map((s) => at(s));
    expect(burstFinding(at(62), spread, defaults)).toBeUndefined();
  });

  it("finds a burst whatever order the errors arrive in", () => {
    const all = [0, 5, 10, 15, 20].map((s) => at(s));
    // The earliest error arrives last: the window after it holds the burst.
    expect(burstFinding(at(0), all, defaults)?.eventIds).toEqual(["e0", "e5", "e10", "e15", "e20"]);
  });

  it("follows the template's count and window", () => {
    const settings = { ...defaults, accessDeniedBurst: { count: 2, windowSeconds: 5 } };
    expect(burstFinding(at(4), [at(0), at(4)], settings)).toMatchObject({
      detail: "2 AccessDenied errors within 5 s (s3:PutObject)",
    });
    expect(burstFinding(at(6), [at(0), at(6)], settings)).toBeUndefined();
  });
});
