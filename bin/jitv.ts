import { commandHelp, USAGE } from "../lib/cli/usage.js";

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // Arguments after `--` belong to the command `jitv exec` runs.
  const own = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (command && (own.includes("--help") || own.includes("-h"))) {
    const help = commandHelp(command);
    if (help) {
      process.stdout.write(help);
      return 0;
    }
  }
  switch (command) {
    case "dev":
      return (await import("../lib/sandbox/cli.js")).devCommand(rest);
    case "token":
      return (await import("../lib/sandbox/cli.js")).tokenCommand(rest);
    case "vend":
    case "credential-process":
    case "exec":
    case "task":
    case "tasks":
    case "simulate":
      return (await import("../lib/cli/agent.js")).agentCommand(command, rest);
    case "templates":
    case "policies":
      return (await import("../lib/cli/store.js")).storeCommand(command, rest);
    case "audit":
      return (await import("../lib/cli/audit.js")).auditCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`jitv: unknown command "${command}"\n\n${USAGE}`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`jitv: ${err instanceof Error ? err.message : String(err)}\n`);
    // A CliError says which: 1 the API refused, 2 usage, 3 the API unreachable.
    const code = (err as { exitCode?: unknown }).exitCode;
    process.exitCode = typeof code === "number" ? code : 1;
  },
);
