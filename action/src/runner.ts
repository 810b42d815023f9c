/**
 * The few pieces of the GitHub Actions runner protocol this action needs, written out instead
 * of depending on `@actions/core`: inputs from `INPUT_<NAME>`, workflow commands on stdout
 * (`::add-mask::`, `::error::`, `::notice::`), the `GITHUB_ENV` / `GITHUB_OUTPUT` /
 * `GITHUB_STATE` files, and state read back by the post step from `STATE_<name>`.
 */
import { randomUUID } from "node:crypto";
import { appendFileSync } from "node:fs";
import { EOL } from "node:os";

/** A failure whose message is safe to show in the job log: never a token or a credential. */
export class ActionError extends Error {
  override readonly name = "ActionError";
}

/**
 * An input of the step, trimmed; `""` when not given. The runner passes `with:` values (and
 * the defaults of action.yml) as `INPUT_<NAME>`, the name upper-cased with spaces as `_`.
 * @throws ActionError when `required` and empty
 */
export function getInput(name: string, options: { required?: boolean } = {}): string {
  const value = (process.env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] ?? "").trim();
  if (options.required && value === "") throw new ActionError(`input "${name}" is required`);
  return value;
}

/** What main saved with {@link saveState}, as the runner hands it to post; `""` when absent. */
export function getState(name: string): string {
  return process.env[`STATE_${name}`] ?? "";
}

/** Workflow command data: `%`, CR and LF would end or bend the command line. */
function escapeData(value: string): string {
  return value.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

function command(name: string, message: string): void {
  process.stdout.write(`::${name}::${escapeData(message)}${EOL}`);
}

/** From now on the runner replaces `value` with `***` in the log. Call it before `value` can appear anywhere. */
export function mask(value: string): void {
  if (value !== "") command("add-mask", value);
}

export function info(message: string): void {
  process.stdout.write(`${message}${EOL}`);
}

export function notice(message: string): void {
  command("notice", message);
}

export function warning(message: string): void {
  command("warning", message);
}

export function error(message: string): void {
  command("error", message);
}

/**
 * Appends `name<<delimiter` / value / `delimiter` to the file the runner named in `fileVar`:
 * the multi-line-safe form, with a random delimiter a value cannot end early.
 */
function appendFileCommand(
  fileVar: "GITHUB_ENV" | "GITHUB_OUTPUT" | "GITHUB_STATE",
  name: string,
  value: string,
) {
  const path = process.env[fileVar];
  if (!path)
    throw new ActionError(`${fileVar} is not set: run this action as a step of a GitHub Actions job`);
  const delimiter = `ghadelimiter_${randomUUID()}`;
  if (name.includes(delimiter) || value.includes(delimiter)) {
    throw new ActionError(`the value of ${name} contains its own delimiter`);
  }
  appendFileSync(path, `${name}<<${delimiter}${EOL}${value}${EOL}${delimiter}${EOL}`, "utf8");
}

/** An environment variable for the job's later steps (`GITHUB_ENV`). */
export function exportVariable(name: string, value: string): void {
  appendFileCommand("GITHUB_ENV", name, value);
}

/** A step output (`GITHUB_OUTPUT`). */
export function setOutput(name: string, value: string): void {
  appendFileCommand("GITHUB_OUTPUT", name, value);
}

/** State for this action's post step (`GITHUB_STATE`), read back with {@link getState}. */
export function saveState(name: string, value: string): void {
  appendFileCommand("GITHUB_STATE", name, value);
}

/**
 * Runs a step: any failure becomes one `::error::` line and exit status 1. Only
 * {@link ActionError} messages are printed as they are; anything else is reported by its
 * kind, since its message could quote a response.
 */
export function runStep(step: () => Promise<void>): void {
  step().catch((failure: unknown) => {
    error(
      failure instanceof ActionError
        ? failure.message
        : `jitv: unexpected ${failure instanceof Error ? failure.name : "failure"}`,
    );
    process.exitCode = 1;
  });
}
