import { readFileSync } from "node:fs";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { buildTestApp, type Resources } from "./support.js";

const deployed = JSON.parse(
  readFileSync(new URL("./deployed-logical-ids.json", import.meta.url), "utf8"),
) as Record<string, string>;

// The vending stack's logical ids as deployed before it was split into constructs (context
// targetAccounts, alarmEmail and wafAclArn set, so every optional resource exists). A logical id
// that changes makes CloudFormation replace the resource: a new, empty table, new roles while
// teams' trust policies name the old ones, a stream mapping that starts over.
describe("VendingStack logical ids", () => {
  const { stack } = buildTestApp({
    bundle: false,
    context: {
      targetAccounts: "210987654321",
      alarmEmail: "a@example.com",
      wafAclArn:
        "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/jitv/0123abcd-0000-1111-2222-333344445555",
    },
    env: { account: "111122223333", region: "eu-west-1" },
  });
  const resources = Template.fromStack(stack).toJSON().Resources as Resources;

  it("keeps every deployed resource under its logical id and type", () => {
    const now = Object.fromEntries(Object.entries(resources).map(([id, r]) => [id, r.Type as string]));
    // The API deployment is replaced whenever the API changes, by design: its id hashes the API.
    const stable = Object.entries(deployed).filter(([id]) => !id.startsWith("HttpApiDeployment"));
    expect(stable.length).toBeGreaterThan(100);
    expect(Object.fromEntries(stable.map(([id]) => [id, now[id]]))).toEqual(Object.fromEntries(stable));
  });
});
