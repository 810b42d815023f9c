import {
  ExecutionAlreadyExists,
  InvalidToken,
  SendTaskSuccessCommand,
  SFNClient,
  SFNServiceException,
  StartExecutionCommand,
  TaskTimedOut,
} from "@aws-sdk/client-sfn";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { SfnLifecycleStarter, SfnTaskTokenSender } from "../../../lib/tasks/sfn-lifecycle.js";

const sfn = mockClient(SFNClient);
const STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:jitv-task-lifecycle";
const NOW = new Date("2026-01-01T00:00:00.000Z");
const task = {
  taskId: "tsk_0123456789abcdefghjkmnpqrs",
  expiresAt: "2026-01-01T00:15:00.500Z",
  status: "active" as const,
};
const noSleep = async () => undefined;
const throttled = () =>
  new SFNServiceException({
    name: "ThrottlingException",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
  });

beforeEach(() => {
  sfn.reset();
});

describe("SfnLifecycleStarter", () => {
  const starter = () =>
    new SfnLifecycleStarter({
      client: new SFNClient({}),
      stateMachineArn: STATE_MACHINE,
      now: () => NOW,
      sleep: noSleep,
    });

  it("starts one execution named by the task id, with the deadline in seconds", async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: "arn:x", startDate: NOW });
    await starter().start(task);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
    expect(sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input).toStrictEqual({
      stateMachineArn: STATE_MACHINE,
      name: task.taskId,
      input: JSON.stringify({
        taskId: task.taskId,
        timeoutSeconds: 901,
        approvalRequired: false,
        approvalTimeoutSeconds: 901,
      }),
    });
  });

  it("treats an execution that already exists as started (idempotent start)", async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: "exists", $metadata: {} }));
    await expect(starter().start(task)).resolves.toBeUndefined();
  });

  it("retries throttling, then gives up with upstream_unavailable", async () => {
    sfn
      .on(StartExecutionCommand)
      .rejectsOnce(throttled())
      .resolves({ executionArn: "arn:x", startDate: NOW });
    await starter().start(task);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 2);

    sfn.reset();
    sfn.on(StartExecutionCommand).rejects(throttled());
    await expect(starter().start(task)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 4);
  });
});

describe("SfnTaskTokenSender", () => {
  const sender = () => new SfnTaskTokenSender({ client: new SFNClient({}), sleep: noSleep });

  it("sends exactly the token and the outcome", async () => {
    sfn.on(SendTaskSuccessCommand).resolves({});
    await sender().sendSuccess("token-1", { outcome: "completed" });
    expect(sfn.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input).toStrictEqual({
      taskToken: "token-1",
      output: '{"outcome":"completed"}',
    });
  });

  it("accepts a token the execution already moved past", async () => {
    sfn.on(SendTaskSuccessCommand).rejects(new TaskTimedOut({ message: "timed out", $metadata: {} }));
    await expect(sender().sendSuccess("token-1", { outcome: "revoked" })).resolves.toBeUndefined();
  });

  it("never puts the token in its error", async () => {
    sfn
      .on(SendTaskSuccessCommand)
      .rejects(new InvalidToken({ message: "Invalid token token-secret-1", $metadata: {} }));
    const err = await sender()
      .sendSuccess("token-secret-1", { outcome: "completed" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect(JSON.stringify({ message: (err as Error).message, cause: (err as Error).cause })).not.toContain(
      "token-secret-1",
    );
  });
});
