import { App } from "aws-cdk-lib";
import { VendingStack } from "./stacks/vending-stack.js";

const app = new App();
const stage = (app.node.tryGetContext("stage") as string | undefined) ?? "dev";
new VendingStack(app, `Jitv-${stage}`, { stage });
app.synth();
