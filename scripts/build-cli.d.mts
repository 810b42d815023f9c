/** Where the CLI build goes (git-ignored). */
export const OUT_DIR: string;
/** Builds dist/esm/; false when esbuild is not installed. Throws when the build fails. */
export function buildCli(): Promise<boolean>;
/** Removes the build, so bin/jitv.mjs runs the sources through tsx. */
export function removeCliBuild(): void;
