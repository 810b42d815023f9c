import type { RoleRule } from "../domain/identity.js";
import type { TaskTemplate } from "../domain/template.js";

/** The port of a loopback issuer URL (`http://127.0.0.1:8788/agents`), or undefined for any other URL. */
function loopbackPort(url: string): number | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (!["127.0.0.1", "localhost", "[::1]"].includes(parsed.hostname)) return undefined;
  return Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80));
}

/**
 * One line for each template, and each `admins`/`approvers` rule of the issuers file, that names
 * an issuer on this machine at a port the sandbox's local issuers do not listen on, and that no
 * configured profile defines — the mistake behind "every vend is 403" after `--issuer-port`
 * (the example templates name 8788). An issuer that the issuers file defines (a local IdP of
 * the user's own, on any port) is trusted as configured and not flagged.
 */
export function issuerPortWarnings(input: {
  /** The port the sandbox's local issuers listen on. */
  readonly issuerPort: number;
  readonly templates: readonly Pick<TaskTemplate, "name" | "agents">[];
  /** The `admins` and `approvers` rules of `--issuers FILE`. */
  readonly fileRules: readonly RoleRule[];
  /** Every issuer the sandbox trusts: its own and the issuers file's profiles. */
  readonly configured: readonly string[];
}): string[] {
  const { issuerPort } = input;
  /** The first named issuer that is on this machine, on another port, and not configured. */
  const stray = (issuers: readonly string[]) => {
    for (const issuer of issuers) {
      const port = loopbackPort(issuer);
      if (port !== undefined && port !== issuerPort && !input.configured.includes(issuer))
        return { issuer, port };
    }
    return undefined;
  };
  const warnings: string[] = [];
  for (const template of input.templates) {
    const found = stray(template.agents.map((a) => a.issuer));
    if (found)
      warnings.push(
        `template ${template.name} names issuer ${found.issuer} (port ${found.port}), but the sandbox's issuers listen on port ${issuerPort}: its vends will be refused; start with --issuer-port ${found.port} or edit the template`,
      );
  }
  const found = stray(input.fileRules.map((rule) => rule.issuer));
  if (found)
    warnings.push(
      `the issuers file's admins/approvers name issuer ${found.issuer} (port ${found.port}), but the sandbox's issuers listen on port ${issuerPort}: those roles will match no token; start with --issuer-port ${found.port} or edit the file`,
    );
  return warnings;
}
