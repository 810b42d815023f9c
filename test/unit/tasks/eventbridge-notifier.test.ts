import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import type { Task } from "../../../lib/domain/task.js";
import { EventBridgeNotifier } from "../../../lib/tasks/eventbridge-notifier.js";

const events = mockClient(EventBridgeClient);
const task: Task = {
  taskId: "tsk_0123456789abcdefghjkmnpqrs",
  status: "pending_approval",
  template: "prod-db-admin",
  zone: "workforce",
  roleArn: "arn:aws:iam::123456789012:role/jitv/prod-db-admin",
  agent: { issuer: "https://issuer.example", id: "agent-a" },
  purpose: "resize",
  parameters: {},
  sessionPolicy: '{"Version":"2012-10-17","Statement":[]}',
  createdAt: "2026-01-01T00:00:00.000Z",
  expiresAt: "2026-01-01T00:30:00.000Z",
  issuedCount: 0,
  taskToken: "secret-task-token",
};

beforeEach(() => {
  events.reset();
});

describe("EventBridgeNotifier", () => {
  it("puts exactly one 'Task pending approval' event, without tokens or the session policy", async () => {
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    await new EventBridgeNotifier({
      client: new EventBridgeClient({}),
      eventBusName: "jitv",
    }).pendingApproval(task, 2);
    const input = events.commandCalls(PutEventsCommand)[0]?.args[0].input;
    expect(input).toStrictEqual({
      Entries: [
        {
          Source: "jitv",
          DetailType: "Task pending approval",
          EventBusName: "jitv",
          Detail: JSON.stringify({
            taskId: task.taskId,
            template: "prod-db-admin",
            zone: "workforce",
            agent: task.agent,
            purpose: "resize",
            approvalsRequired: 2,
            decideBy: task.expiresAt,
          }),
        },
      ],
    });
    expect(JSON.stringify(input)).not.toContain("secret-task-token");
  });

  it("reports a failed entry as upstream_unavailable", async () => {
    events
      .on(PutEventsCommand)
      .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: "InternalFailure" }] });
    await expect(
      new EventBridgeNotifier({ client: new EventBridgeClient({}) }).pendingApproval(task, 1),
    ).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });
});
