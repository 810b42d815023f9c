import { IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { IamRolePolicyWriter } from "../../../lib/revocation/iam-role-policy-writer.js";
import { RevokerIamClients } from "../../../lib/revocation/revoker-clients.js";

const sts = mockClient(STSClient);
const iam = mockClient(IAMClient);
const HOME = "111122223333";
const NOW = new Date("2026-03-02T10:00:00.000Z");

function clients(now = () => NOW) {
  const made: { account: string; credentials: () => Promise<unknown> }[] = [];
  const home = new IAMClient({ region: "us-east-1", maxAttempts: 1 });
  const revokers = new RevokerIamClients({
    homeAccount: HOME,
    home,
    sts: new STSClient({ region: "us-east-1" }),
    now,
    makeClient: (credentials, account) => {
      made.push({ account, credentials });
      return new IAMClient({ region: "us-east-1", maxAttempts: 1, credentials });
    },
  });
  return { home, revokers, made };
}

describe("RevokerIamClients", () => {
  beforeEach(() => {
    sts.reset();
    iam.reset();
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: "ASIAREVOKER",
        SecretAccessKey: "secret",
        SessionToken: "token",
        Expiration: new Date(NOW.getTime() + 900_000),
      },
    });
  });

  it("writes a role of the vending account with the function's own client, and never assumes anything for it", async () => {
    const { home, revokers, made } = clients();
    expect(revokers.forRole(`arn:aws:iam::${HOME}:role/jitv/reader`)).toBe(home);
    expect(made).toEqual([]);
    expect(sts).not.toHaveReceivedAnyCommand();
  });

  it("writes a role of another account through that account's revoker role, one client per account", async () => {
    const { revokers, made } = clients();
    const a = revokers.forRole("arn:aws:iam::210987654321:role/jitv/reader");
    const b = revokers.forRole("arn:aws:iam::210987654321:role/jitv/team/writer");
    const c = revokers.forRole("arn:aws:iam::444455556666:role/jitv/reader");
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(made.map((m) => m.account)).toEqual(["210987654321", "444455556666"]);
    await expect(made[0]?.credentials()).resolves.toMatchObject({ accessKeyId: "ASIAREVOKER" });
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: "arn:aws:iam::210987654321:role/jitv/jitv-revoker",
      RoleSessionName: "jitv-revocation",
      DurationSeconds: 900,
    });
  });

  it("keeps the assumed credentials until five minutes before they expire", async () => {
    let now = NOW;
    const { revokers, made } = clients(() => now);
    revokers.forRole("arn:aws:iam::210987654321:role/jitv/reader");
    const credentials = made[0]?.credentials as () => Promise<unknown>;
    await credentials();
    now = new Date(NOW.getTime() + 9 * 60_000);
    await credentials();
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    now = new Date(NOW.getTime() + 10 * 60_000 + 1);
    await credentials();
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
  });

  it("addresses the role by ARN: the writer puts the deny on the target account's role, by its name there", async () => {
    iam.on(PutRolePolicyCommand).resolves({});
    const { revokers } = clients();
    const writer = new IamRolePolicyWriter({ client: revokers.forRole, sleep: async () => undefined });
    await writer.put("arn:aws:iam::210987654321:role/jitv/reader", "jitv-revoked-tasks", "{}");
    const [call] = iam.commandCalls(PutRolePolicyCommand);
    if (!call) throw new Error("no PutRolePolicy call");
    expect(call.args[0].input).toEqual({
      RoleName: "reader",
      PolicyName: "jitv-revoked-tasks",
      PolicyDocument: "{}",
    });
    // The call went out with the revoker role's credentials, not the function's own.
    const credentials = await (call.thisValue as IAMClient).config.credentials();
    expect(credentials.accessKeyId).toBe("ASIAREVOKER");
  });

  it("says which revoker role could not be assumed, without the STS error's text", async () => {
    sts
      .on(AssumeRoleCommand)
      .rejects(Object.assign(new Error("not authorized: secret detail"), { name: "AccessDenied" }));
    const { revokers, made } = clients();
    revokers.forRole("arn:aws:iam::210987654321:role/jitv/reader");
    await expect(made[0]?.credentials()).rejects.toThrow(
      "could not assume the revoker role arn:aws:iam::210987654321:role/jitv/jitv-revoker",
    );
  });
});
