import { Stack } from "aws-cdk-lib";
import { EventBus, Rule } from "aws-cdk-lib/aws-events";
import { EventBus as EventBusTarget } from "aws-cdk-lib/aws-events-targets";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { driftEventPattern } from "../../lib/drift/event-pattern.js";
import { DEPLOY_DEFAULTS } from "../config.js";
import { cdkEventPattern } from "./drift-detector.js";

export interface DriftForwarderProps {
  /** The vending account, whose bus the {@link DriftDetector} rule listens on. */
  readonly vendingAccount: string;
  /** The vending stack's region. @default this stack's region */
  readonly vendingRegion?: string;
  /** The bus in the vending account. @default "default" */
  readonly vendingBusName?: string;
  /** IAM path of the roles agents assume in this account. @default "/jitv/" */
  readonly rolePath?: string;
}

/**
 * Part of a target account's stack (CONTRACT.md section 9): a rule on this account's default bus
 * that forwards CloudTrail records of this account's jitv roles' sessions (matched on
 * `sessionContext.sessionIssuer.arn` under the role path; never the revoker role) to the vending
 * account's bus, where the {@link DriftDetector} judges them. Forwarding uses a role that may
 * only put events on that one bus.
 *
 * EventBridge sees CloudTrail events in the region where they happen (IAM's and other global
 * services' in us-east-1), so deploy it in every region agents use.
 *
 * @example
 * new DriftForwarder(this, "DriftForwarder", { vendingAccount: "111122223333", vendingRegion: "eu-west-1" });
 */
export class DriftForwarder extends Construct {
  readonly rule: Rule;
  readonly role: Role;

  constructor(scope: Construct, id: string, props: DriftForwarderProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const rolePath = props.rolePath ?? DEPLOY_DEFAULTS.rolePath;
    const vendingBusArn = stack.formatArn({
      service: "events",
      account: props.vendingAccount,
      region: props.vendingRegion ?? stack.region,
      resource: "event-bus",
      resourceName: props.vendingBusName ?? "default",
    });
    this.role = new Role(this, "Role", {
      assumedBy: new ServicePrincipal("events.amazonaws.com"),
      description: "jitv drift: forwards CloudTrail records of jitv sessions to the vending account's bus",
    });
    this.rule = new Rule(this, "CloudTrailOfJitvSessions", {
      description: "jitv drift: CloudTrail records of jitv roles' sessions, to the vending account",
      eventPattern: cdkEventPattern(
        driftEventPattern([`arn:${stack.partition}:iam::${stack.account}:role${rolePath}`]),
      ),
      // The target grants the role events:PutEvents on that bus, and nothing else.
      targets: [
        new EventBusTarget(EventBus.fromEventBusArn(this, "VendingBus", vendingBusArn), { role: this.role }),
      ],
    });
  }
}
