import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { DynamoPolicyStore } from "../authz/dynamo-policy-store.js";
import { ENV } from "../config.js";
import { assertTargetAccountForPut, parseAccountList, type TargetAccounts } from "../domain/accounts.js";
import { JitvError } from "../domain/errors.js";
import { lintTemplate } from "../domain/render.js";
import { parseTemplate, type TaskTemplate } from "../domain/template.js";
import { DynamoTemplateStore } from "../tasks/dynamo-template-store.js";
import { explainCommand } from "./explain.js";

/**
 * The security team's commands against a deployed table (the stack's `TableName` output):
 * `jitv templates lint|put|list|show|explain` and `jitv policies put|list|show`. Writes are validated
 * exactly like the sandbox's start-up puts. AWS credentials and region come from the usual
 * SDK chain; `--endpoint` points at DynamoDB Local (then local placeholder credentials).
 */
export async function storeCommand(kind: "templates" | "policies", argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      table: { type: "string" },
      endpoint: { type: "string" },
      region: { type: "string" },
      "expected-version": { type: "string" },
      accounts: { type: "string" },
      json: { type: "boolean" },
    },
  });
  const [sub, ...rest] = positionals;
  // The deployment's target accounts (the stack's TargetAccounts output): a template whose role is
  // in any other account is refused, since jitv could not revoke there.
  const accountList = values.accounts ?? process.env[ENV.targetAccounts];
  const targetAccounts = accountList === undefined ? undefined : parseAccountList(accountList);
  if (kind === "templates" && sub === "lint") return lint(rest, targetAccounts);
  // `explain FILE` needs no table: an existing path, or one that looks like a file, is read as one.
  const target = rest[0];
  if (kind === "templates" && sub === "explain" && !target)
    throw new Error("usage: jitv templates explain FILE|NAME [--json] [--table T] [--endpoint URL]");
  const isFile = target !== undefined && (existsSync(target) || /[/\\]|\.json$/i.test(target));
  if (kind === "templates" && sub === "explain" && target && isFile) {
    return explainCommand(readTemplateFile(target), values.json === true);
  }
  const tableName = values.table ?? process.env.JITV_TABLE_NAME;
  if (!tableName) throw new Error("--table (or JITV_TABLE_NAME) is required: the stack's TableName output");
  const local =
    values.endpoint !== undefined && /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?\/?$/.test(values.endpoint);
  const client = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      ...(values.endpoint ? { endpoint: values.endpoint } : {}),
      ...(values.region ? { region: values.region } : local ? { region: "us-east-1" } : {}),
      ...(local ? { credentials: { accessKeyId: "local", secretAccessKey: "local" } } : {}),
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  try {
    return kind === "templates"
      ? await templates(
          new DynamoTemplateStore({ client, tableName, targetAccounts }),
          sub,
          rest,
          values.json === true,
        )
      : await policies(new DynamoPolicyStore({ client, tableName }), sub, rest, values["expected-version"]);
  } finally {
    client.destroy();
  }
}

function lint(files: string[], targetAccounts: TargetAccounts): number {
  if (files.length === 0) throw new Error("usage: jitv templates lint FILE...");
  let failures = 0;
  for (const file of files) {
    try {
      const template = parseTemplate(JSON.parse(readFileSync(file, "utf8")));
      lintTemplate(template);
      assertTargetAccountForPut(template.roleArn, targetAccounts);
      process.stdout.write(`ok    ${file} (${template.name}, ${template.zone} zone)\n`);
    } catch (err) {
      failures++;
      process.stdout.write(`fail  ${file}: ${messageOf(err)}\n`);
    }
  }
  return failures === 0 ? 0 : 1;
}

async function templates(
  store: DynamoTemplateStore,
  sub: string | undefined,
  args: string[],
  json: boolean,
): Promise<number> {
  if (sub === "put" && args.length > 0) {
    // All files are checked before any is stored: a bad file stores nothing.
    const parsed = args.map((file) => {
      const template = readTemplateFile(file);
      try {
        lintTemplate(template);
        return template;
      } catch (err) {
        throw new Error(`${file}: ${messageOf(err)}`);
      }
    });
    for (const template of parsed) {
      await store.put(template);
      process.stdout.write(`put   ${template.name}\n`);
    }
    return 0;
  }
  if (sub === "list") {
    for (const t of await store.list()) process.stdout.write(`${t.name}\t${t.zone}\t${t.roleArn}\n`);
    return 0;
  }
  if (sub === "show" && args[0]) {
    const template = await store.get(args[0]);
    if (!template) throw new Error(`no template ${args[0]}`);
    process.stdout.write(`${JSON.stringify(template, null, 2)}\n`);
    return 0;
  }
  if (sub === "explain" && args[0]) {
    const template = await store.get(args[0]);
    if (!template) throw new Error(`no template ${args[0]}: jitv templates list shows the stored ones`);
    return explainCommand(template, json);
  }
  throw new Error(
    "usage: jitv templates lint FILE... | put FILE... | list | show NAME | explain FILE|NAME [--json]  [--table T] [--endpoint URL] [--accounts IDS]",
  );
}

async function policies(
  store: DynamoPolicyStore,
  sub: string | undefined,
  args: string[],
  expected: string | undefined,
): Promise<number> {
  if (sub === "put" && args[0] && args[1]) {
    const expectedVersion = expected === undefined ? undefined : Number(expected);
    const { name, version } = await store
      .put(args[0], readFileSync(args[1], "utf8"), expectedVersion)
      .catch((err: unknown) => {
        throw new Error(`${args[1]}: ${messageOf(err)}`);
      });
    process.stdout.write(`put   ${name} version ${version}\n`);
    return 0;
  }
  if (sub === "list") {
    for (const set of await store.list()) {
      process.stdout.write(`${set.name}\tversion ${set.version}\t${set.policyIds.join(", ")}\n`);
    }
    return 0;
  }
  if (sub === "show" && args[0]) {
    const set = await store.get(args[0]);
    if (!set) throw new Error(`no policy set ${args[0]}`);
    process.stdout.write(set.text.endsWith("\n") ? set.text : `${set.text}\n`);
    return 0;
  }
  throw new Error(
    "usage: jitv policies put NAME FILE [--expected-version N] | list | show NAME  [--table T]",
  );
}

/** A template file, parsed (not linted); errors name the file. */
function readTemplateFile(file: string): TaskTemplate {
  try {
    return parseTemplate(JSON.parse(readFileSync(file, "utf8")));
  } catch (err) {
    throw new Error(`${file}: ${messageOf(err)}`);
  }
}

function messageOf(err: unknown): string {
  return err instanceof JitvError || err instanceof SyntaxError || err instanceof Error
    ? err.message
    : String(err);
}
