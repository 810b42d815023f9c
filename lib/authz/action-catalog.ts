/** IAM's access levels, as the Service Authorization Reference names them. */
export type AccessLevel = "List" | "Read" | "Write" | "Permissions management" | "Tagging";

/** One IAM action and its access level. */
export interface CatalogAction {
  /** `service:Action`, spelt as IAM documents it (e.g. `s3:GetObject`). */
  readonly action: string;
  readonly accessLevel: AccessLevel;
}

/** Port: the IAM actions AWS documents, for expanding wildcards (`jitv templates explain`). */
export interface ActionCatalog {
  /** Every service prefix (`s3`, `iam`, …), lower case. */
  services(): Promise<readonly string[]>;
  /** The service's actions, or `undefined` when no such service is documented. */
  actions(service: string): Promise<readonly CatalogAction[] | undefined>;
  /** Which edition of the data answers (shown with every explanation). */
  version(): Promise<string>;
}
