import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { AuditEvent, AuditLog } from "./audit-log.js";
import { type AuditQuery, type AuditReader, type AuditRecord, matchesAuditQuery } from "./audit-reader.js";

export interface FileAuditTrailOptions {
  /** Where every event also goes (the sandbox's log lines). */
  readonly next?: AuditLog;
  /** A JSON-lines file the events are appended to and read back from at start (mode 0600). */
  readonly file?: string;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Events kept in memory for reading; older ones stay in the file only. @default 10000 */
  readonly capacity?: number;
}

/**
 * The sandbox's audit trail: records every event (passing it on to `next`) and reads them back for
 * `GET /v1/sandbox/audit`. The newest `capacity` events are kept in memory; with a `file` (the
 * sandbox's `--data` directory) they are also appended as JSON lines, so the trail outlives a
 * restart as the tasks do. Deployed, the same events are log lines read back by Logs Insights.
 */
export class FileAuditTrail implements AuditLog, AuditReader {
  readonly #records: AuditRecord[] = [];
  readonly #options: FileAuditTrailOptions;
  readonly #capacity: number;

  constructor(options: FileAuditTrailOptions = {}) {
    this.#options = options;
    this.#capacity = options.capacity ?? 10_000;
    if (options.file && existsSync(options.file)) {
      const lines = readFileSync(options.file, "utf8").split("\n").filter(Boolean);
      for (const line of lines.slice(-this.#capacity)) this.#records.push(JSON.parse(line) as AuditRecord);
    }
  }

  record(event: AuditEvent): void {
    const record: AuditRecord = { ...event, at: (this.#options.now?.() ?? new Date()).toISOString() };
    this.#records.push(record);
    if (this.#records.length > this.#capacity) this.#records.shift();
    const { file } = this.#options;
    if (file) {
      mkdirSync(dirname(file), { recursive: true });
      appendFileSync(file, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    }
    this.#options.next?.record(event);
  }

  async read(query: AuditQuery): Promise<AuditRecord[]> {
    const found: AuditRecord[] = [];
    // Newest first until the limit, then back to oldest first.
    for (let i = this.#records.length - 1; i >= 0 && found.length < query.limit; i--) {
      const record = this.#records[i] as AuditRecord;
      if (matchesAuditQuery(record, query)) found.push(record);
    }
    return found.reverse();
  }
}
