import { describe, expect, it } from "vitest";
import {
  accountOf,
  assertTargetAccountForPut,
  assertTargetAccountForVend,
  parseAccountList,
  revokerRoleArn,
} from "../../../lib/domain/accounts.js";
import { ForbiddenError, InvalidRequestError } from "../../../lib/domain/errors.js";

describe("target accounts", () => {
  const accounts = ["123456789012", "210987654321"];

  it("reads the account of a role ARN in any partition", () => {
    expect(accountOf("arn:aws:iam::123456789012:role/jitv/reader")).toBe("123456789012");
    expect(accountOf("arn:aws-us-gov:iam::210987654321:role/x")).toBe("210987654321");
    expect(accountOf("arn:aws:iam::123456789012:user/x")).toBeUndefined();
  });

  it("refuses at put a role outside the target accounts, and jitv's own revoker role anywhere", () => {
    expect(() =>
      assertTargetAccountForPut("arn:aws:iam::210987654321:role/jitv/reader", accounts),
    ).not.toThrow();
    expect(() => assertTargetAccountForPut("arn:aws:iam::999999999999:role/jitv/reader", accounts)).toThrow(
      new InvalidRequestError(
        "roleArn is in account 999999999999, which is not a registered target account of this deployment; deploy the target-account stack there and add it to targetAccounts",
      ),
    );
    expect(() =>
      assertTargetAccountForPut("arn:aws:iam::210987654321:role/jitv/jitv-revoker", accounts),
    ).toThrow(/revoker role/);
    // Without a registry (a tool that was not told), only the revoker role is refused.
    expect(() =>
      assertTargetAccountForPut("arn:aws:iam::999999999999:role/jitv/reader", undefined),
    ).not.toThrow();
  });

  it("refuses to vend from a role outside the target accounts with 403", () => {
    expect(() => assertTargetAccountForVend("arn:aws:iam::999999999999:role/jitv/reader", accounts)).toThrow(
      ForbiddenError,
    );
    expect(() =>
      assertTargetAccountForVend("arn:aws:iam::123456789012:role/jitv/reader", accounts),
    ).not.toThrow();
  });

  it("parses account lists and names the bad entries", () => {
    expect(parseAccountList("123456789012, 210987654321,123456789012")).toEqual(accounts);
    expect(parseAccountList(["123456789012"])).toEqual(["123456789012"]);
    expect(() => parseAccountList("123456789012,12345,abc")).toThrow(
      "not 12-digit AWS account ids: 12345, abc",
    );
  });

  it("names the revoker role of a role's account", () => {
    expect(revokerRoleArn("arn:aws-cn:iam::210987654321:role/jitv/team/reader")).toBe(
      "arn:aws-cn:iam::210987654321:role/jitv/jitv-revoker",
    );
  });
});
