import { describe, expect, it } from "vitest";
import { iamActionOf, isAccessDenied, taskCallOf } from "../../../lib/drift/cloudtrail.js";
import { cloudTrailRecord, FIXTURE_ROLE_ARN, FIXTURE_TASK_ID } from "../../fixtures/cloudtrail/records.js";

describe("taskCallOf", () => {
  it("reads an S3 data event of a jitv session: task, role with its path, agent, object", () => {
    expect(taskCallOf(cloudTrailRecord("s3-get-object"))).toEqual({
      eventId: "6b1c8a8e-2f0e-4d4b-9f61-0c6f1f2a0001",
      eventTime: "2026-11-29T20:05:00.000Z",
      eventSource: "s3.amazonaws.com",
      eventName: "GetObject",
      taskId: FIXTURE_TASK_ID,
      roleArn: FIXTURE_ROLE_ARN,
      sourceIdentity: "demo-agent",
      sourceIp: "203.0.113.10",
      resources: ["arn:aws:s3:::jitv-demo-reports/q3/summary.csv", "arn:aws:s3:::jitv-demo-reports"],
    });
  });

  it("reads the error code of a refused management event", () => {
    expect(taskCallOf(cloudTrailRecord("ec2-describe-instances-unauthorized"))).toMatchObject({
      eventName: "DescribeInstances",
      errorCode: "Client.UnauthorizedOperation",
      resources: [],
    });
  });

  it("names an S3 object from the request parameters when the record lists no resources", () => {
    const record = cloudTrailRecord("s3-get-object");
    delete record.resources;
    expect(taskCallOf(record)?.resources).toEqual([
      "arn:aws:s3:::jitv-demo-reports/q3/summary.csv",
      "arn:aws:s3:::jitv-demo-reports",
    ]);
  });

  it("ignores other principals, sessions not named after a task, and a role that is not the session's issuer", () => {
    expect(taskCallOf(cloudTrailRecord("iam-user-get-object"))).toBeUndefined();
    const named = cloudTrailRecord("s3-get-object");
    named.userIdentity.arn =
      "arn:aws:sts::123456789012:assumed-role/reports-reader/botocore-session-1732910700";
    expect(taskCallOf(named)).toBeUndefined();
    const otherIssuer = cloudTrailRecord("s3-get-object");
    otherIssuer.userIdentity.sessionContext.sessionIssuer.arn = "arn:aws:iam::123456789012:role/jitv/admin";
    expect(taskCallOf(otherIssuer)).toBeUndefined();
    const otherAccount = cloudTrailRecord("s3-get-object");
    otherAccount.userIdentity.sessionContext.sessionIssuer.arn =
      "arn:aws:iam::999999999999:role/jitv/reports-reader";
    expect(taskCallOf(otherAccount)).toBeUndefined();
  });

  it("ignores service events and records without an event id", () => {
    const service = cloudTrailRecord("s3-get-object");
    service.eventType = "AwsServiceEvent";
    expect(taskCallOf(service)).toBeUndefined();
    const noId = cloudTrailRecord("s3-get-object");
    delete noId.eventID;
    expect(taskCallOf(noId)).toBeUndefined();
    expect(taskCallOf("not a record")).toBeUndefined();
  });
});

describe("iamActionOf", () => {
  it.each([
    ["s3.amazonaws.com", "GetObject", "s3:GetObject"],
    ["s3.amazonaws.com", "ListObjectsV2", "s3:ListBucket"],
    ["s3.amazonaws.com", "HeadObject", "s3:GetObject"],
    ["s3.amazonaws.com", "CompleteMultipartUpload", "s3:PutObject"],
    ["lambda.amazonaws.com", "Invoke20150331", "lambda:InvokeFunction"],
    ["lambda.amazonaws.com", "GetFunction20150331v2", "lambda:GetFunction"],
    ["monitoring.amazonaws.com", "PutMetricData", "cloudwatch:PutMetricData"],
    ["ec2.amazonaws.com", "DescribeInstances", "ec2:DescribeInstances"],
  ])("%s %s → %s", (eventSource, eventName, action) => {
    expect(iamActionOf({ eventSource, eventName })).toBe(action);
  });
});

describe("isAccessDenied", () => {
  it("counts IAM's refusals, not other errors", () => {
    for (const code of [
      "AccessDenied",
      "AccessDeniedException",
      "UnauthorizedOperation",
      "Client.UnauthorizedOperation",
    ]) {
      expect(isAccessDenied({ errorCode: code })).toBe(true);
    }
    expect(isAccessDenied({ errorCode: "NoSuchKey" })).toBe(false);
    expect(isAccessDenied({})).toBe(false);
  });
});
