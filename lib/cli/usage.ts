/**
 * The CLI's help text, the one place usage is written: `jitv help` prints it, `jitv COMMAND --help`
 * prints that command's lines of it, and docs/cli.md is generated from it (scripts/docs-cli.ts).
 */
export const USAGE = `jitv — just-in-time AWS credentials for agents

Sandbox (no AWS account):
  jitv dev [--port 8787] [--issuer-port 8788] [--issuers FILE] [--templates DIR] [--data DIR]
           [--accounts IDS]                    target accounts (default 123456789012,210987654321)
           [--dynamodb-endpoint URL]           use a running DynamoDB Local instead of starting one
           [--faults sts=0.2,dynamodb=0.05,sfn=0.1,iam=0.2,secrets=0.2]   inject failures
  jitv token --agent NAME | --user NAME [--for-agent AGENT]
                                               a token from the sandbox's local issuer (--for-agent:
                                               the user's delegation token for that agent)

Agents:
  jitv vend --template NAME [--param k=v]... [--ttl SECONDS] [--purpose TEXT]
            [--subject-token TOKEN] [--idempotency-key KEY] [--token TOKEN] [--api URL]
  jitv credential-process --template NAME --token-command CMD [--param k=v]... [--api URL]
                                               for AWS config: credential_process = jitv credential-process …
                                               (cached per agent, template and parameters: docs/agents.md)
  jitv exec --template NAME [--param k=v]... [--ttl SECONDS] [--purpose TEXT] -- COMMAND [ARG]...
                                               run COMMAND with the task's credentials; the task ends
                                               with it, and jitv exits with its status
  jitv task get|refresh|complete TASK_ID [--token TOKEN] [--api URL]
                                               get, against the sandbox: also the rendered session policy
                                               and the exact AssumeRole input it recorded
  jitv task approve|deny TASK_ID [--reason TEXT]   as an approver (deny's reason is optional)
  jitv tasks list [--status S] [--template T] [--limit N]   as an admin: the inventory
  jitv simulate TASK_ID ACTION RESOURCE_ARN    sandbox: would these credentials be allowed now?

Security teams (--table = the stack's TableName output, or $JITV_TABLE_NAME;
--accounts = its TargetAccounts output, or $JITV_TARGET_ACCOUNTS: roles elsewhere are refused):
  jitv templates lint FILE...                  validate templates without storing them
  jitv templates put FILE... | list | show NAME
  jitv templates explain FILE|NAME [--json]    what a template grants: every action its wildcards name,
                                               with its access level (!! permissions management, ! write)
  jitv policies put NAME FILE [--expected-version N] | list | show NAME
  jitv task revoke TASK_ID --reason TEXT       with an admin token
  jitv audit --task ID | --agent ID | --since TIME|30m|2h|7d [--limit N] [--json]
             [--log-group NAME]... [--region R]   deployed: Logs Insights on the stack's AuditLogGroups
                                               (or $JITV_AUDIT_LOG_GROUPS); else the sandbox, admin token

The token defaults to $JITV_TOKEN, the API to $JITV_API or http://127.0.0.1:8787.
Exit status: 0 ok, 1 the API refused (its HTTP status and error code on stderr), 2 usage,
3 the API could not be reached.
`;

/** `jitv COMMAND --help`: that command's lines of the help text (the one place usage is written). */
export function commandHelp(command: string): string | undefined {
  const out: string[] = [];
  let inCommand = false;
  for (const line of USAGE.split("\n")) {
    const own = line.trimStart();
    if (own.startsWith("jitv ")) inCommand = own.startsWith(`jitv ${command} `) || own === `jitv ${command}`;
    // Continuation lines are indented deeper than a command's own line; anything else ends it.
    else if (!/^\s{5,}\S/.test(line)) inCommand = false;
    if (inCommand) out.push(line);
  }
  return out.length === 0 ? undefined : `${out.join("\n")}\n`;
}
