interface AslState {
  readonly Type: string;
  readonly Next?: string;
  readonly End?: boolean;
  readonly Catch?: readonly { readonly ErrorEquals: readonly string[]; readonly Next: string }[];
  readonly Retry?: readonly { readonly MaxAttempts?: number }[];
  /** Choice states: each rule's target, labelled with its test; `Default` otherwise. */
  readonly Choices?: readonly (Record<string, unknown> & { readonly Next: string })[];
  readonly Default?: string;
}

/** A Choice rule as an edge label, e.g. `$.approvalRequired = true`. */
function choiceLabel(rule: Record<string, unknown>): string {
  const variable = typeof rule.Variable === "string" ? rule.Variable : "";
  const test = Object.entries(rule).find(([key]) => key !== "Variable" && key !== "Next");
  return test ? `${variable} = ${JSON.stringify(test[1]).replaceAll('"', "'")}` : variable;
}

/**
 * Renders a state machine definition as a Mermaid flowchart: one node per state, one edge per
 * transition (a Choice's rules labelled with their tests, and its default), catches labelled with
 * their errors and retries noted on the node. The architecture doc's (docs/architecture.md)
 * lifecycle diagram is this function's output for the lifecycle ASL (a test keeps them equal).
 */
export function aslToMermaid(definition: { StartAt: string; States: Record<string, AslState> }): string {
  const lines = ["flowchart TD", `  start((start)) --> ${definition.StartAt}`];
  for (const [name, state] of Object.entries(definition.States)) {
    const retries = state.Retry?.[0]?.MaxAttempts;
    const label = retries ? `${name}<br/>retry ×${retries}` : name;
    lines.push(state.Type === "Fail" ? `  ${name}[/"${label}"/]` : `  ${name}["${label}"]`);
    for (const rule of state.Choices ?? [])
      lines.push(`  ${name} -- "${choiceLabel(rule)}" --> ${rule.Next}`);
    if (state.Default) lines.push(`  ${name} -- "otherwise" --> ${state.Default}`);
    for (const c of state.Catch ?? []) lines.push(`  ${name} -- "${c.ErrorEquals.join(", ")}" --> ${c.Next}`);
    if (state.Next) lines.push(`  ${name} --> ${state.Next}`);
    if (state.End) lines.push(`  ${name} --> done((end))`);
  }
  return lines.join("\n");
}
