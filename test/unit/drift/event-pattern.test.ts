import { describe, expect, it } from "vitest";
import {
  driftEventPattern,
  type EventPattern,
  matchesEventPattern,
} from "../../../lib/drift/event-pattern.js";
import { cloudTrailRecord } from "../../fixtures/cloudtrail/records.js";

describe("matchesEventPattern", () => {
  const event = { source: "aws.s3", detail: { name: "GetObject", tags: ["a", "b"], size: 3, flag: null } };

  it("matches exact values, lists and arrays in the event", () => {
    expect(matchesEventPattern({ source: ["aws.s3"] }, event)).toBe(true);
    expect(matchesEventPattern({ source: ["aws.ec2", "aws.s3"] }, event)).toBe(true);
    expect(matchesEventPattern({ source: ["aws.ec2"] }, event)).toBe(false);
    expect(matchesEventPattern({ detail: { tags: ["b"] } }, event)).toBe(true);
    expect(matchesEventPattern({ detail: { size: [3], flag: [null] } }, event)).toBe(true);
    expect(matchesEventPattern({ detail: { size: ["3"] } }, event)).toBe(false);
  });

  it("needs every field, nested ones included", () => {
    expect(matchesEventPattern({ source: ["aws.s3"], detail: { name: ["PutObject"] } }, event)).toBe(false);
    expect(matchesEventPattern({ detail: { missing: { deeper: ["x"] } } }, event)).toBe(false);
  });

  it("implements prefix, anything-but and exists as EventBridge does", () => {
    expect(matchesEventPattern({ detail: { name: [{ prefix: "Get" }] } }, event)).toBe(true);
    expect(matchesEventPattern({ detail: { name: [{ prefix: "Put" }] } }, event)).toBe(false);
    expect(matchesEventPattern({ detail: { name: [{ "anything-but": "PutObject" }] } }, event)).toBe(true);
    expect(matchesEventPattern({ detail: { name: [{ "anything-but": ["GetObject", "x"] }] } }, event)).toBe(
      false,
    );
    expect(matchesEventPattern({ detail: { name: [{ "anything-but": { prefix: "Get" } }] } }, event)).toBe(
      false,
    );
    // anything-but never matches a missing field; only exists: false does.
    expect(matchesEventPattern({ detail: { missing: [{ "anything-but": "x" }] } }, event)).toBe(false);
    expect(matchesEventPattern({ detail: { missing: [{ exists: false }] } }, event)).toBe(true);
    expect(matchesEventPattern({ detail: { name: [{ exists: true }] } }, event)).toBe(true);
  });

  it("refuses operators it does not implement instead of guessing", () => {
    const pattern = { source: [{ wildcard: "aws.*" }] } as unknown as EventPattern;
    expect(() => matchesEventPattern(pattern, event)).toThrow(/unsupported event pattern operator: wildcard/);
  });
});

describe("driftEventPattern", () => {
  const pattern = driftEventPattern(["arn:aws:iam::123456789012:role/jitv/"]);

  it("delivers CloudTrail events of jitv roles' sessions (data and management events, refused calls too)", () => {
    expect(matchesEventPattern(pattern, cloudTrailRecord("eventbridge-s3-get-object"))).toBe(true);
    for (const name of ["s3-put-object-access-denied", "ec2-describe-instances-unauthorized"] as const) {
      const envelope = cloudTrailRecord("eventbridge-s3-get-object");
      envelope.detail = cloudTrailRecord(name);
      expect(matchesEventPattern(pattern, envelope)).toBe(true);
    }
  });

  it("leaves out other principals, roles outside the path or account, and the revoker role", () => {
    const user = cloudTrailRecord("eventbridge-s3-get-object");
    user.detail = cloudTrailRecord("iam-user-get-object");
    expect(matchesEventPattern(pattern, user)).toBe(false);
    for (const roleArn of [
      "arn:aws:iam::123456789012:role/reports-reader",
      "arn:aws:iam::210987654321:role/jitv/reports-reader",
      "arn:aws:iam::123456789012:role/jitv/jitv-revoker",
    ]) {
      expect(matchesEventPattern(pattern, cloudTrailRecord("eventbridge-s3-get-object", { roleArn }))).toBe(
        false,
      );
    }
  });
});
