import type { TaskTemplate } from "../domain/template.js";

/** Port: task templates by name. Writes are validated by the caller (`parseTemplate` + `lintTemplate`). */
export interface TemplateStore {
  get(name: string): Promise<TaskTemplate | undefined>;
  put(template: TaskTemplate): Promise<void>;
  list(): Promise<TaskTemplate[]>;
}
