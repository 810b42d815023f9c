interface AslState {
  readonly Type: string;
  readonly Next?: string;
  readonly End?: boolean;
  readonly Catch?: readonly { readonly ErrorEquals: readonly string[]; readonly Next: string }[];
  readonly Retry?: readonly { readonly MaxAttempts?: number }[];
}

/**
 * Renders a state machine definition as a Mermaid flowchart: one node per state, one edge per
 * transition, catches labelled with their errors and retries noted on the node. The architecture doc's (docs/architecture.md)
 * lifecycle diagram is this function's output for the lifecycle ASL (a test keeps them equal).
 */
export function aslToMermaid(definition: { StartAt: string; States: Record<string, AslState> }): string {
  const lines = ["flowchart TD", `  start((start)) --> ${definition.StartAt}`];
  for (const [name, state] of Object.entries(definition.States)) {
    const retries = state.Retry?.[0]?.MaxAttempts;
    const label = retries ? `${name}<br/>retry ×${retries}` : name;
    lines.push(state.Type === "Fail" ? `  ${name}[/"${label}"/]` : `  ${name}["${label}"]`);
    for (const c of state.Catch ?? []) lines.push(`  ${name} -- "${c.ErrorEquals.join(", ")}" --> ${c.Next}`);
    if (state.Next) lines.push(`  ${name} --> ${state.Next}`);
    if (state.End) lines.push(`  ${name} --> done((end))`);
  }
  return lines.join("\n");
}
