// The one place the UI talks to the backend. Everything goes through the generated,
// typed bindings; components import from here, never from @tauri-apps/api directly.
import { commands } from "./bindings";
import type { Agent_Serialize, AppInfo_Serialize, ErrorReport } from "./bindings";

// What the backend sends (the `_Serialize` shapes: optional fields are explicit nulls).
export type Agent = Agent_Serialize;
export type AppInfo = AppInfo_Serialize;
export type { ErrorReport };

/** A backend failure: a stable code to branch on and a sentence to show. */
export class BackendError extends Error {
  readonly code: string;
  constructor(report: ErrorReport) {
    super(report.message);
    this.code = report.code;
  }
}

type CommandResult<T> = { status: "ok"; data: T } | { status: "error"; error: ErrorReport };

export function unwrap<T>(result: CommandResult<T>): T {
  if (result.status === "ok") return result.data;
  throw new BackendError(result.error);
}

/** Turn anything thrown into a sentence for the user. */
export function messageOf(e: unknown): string {
  if (e instanceof BackendError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export const backend = {
  appInfo: (): Promise<AppInfo> => commands.appInfo(),
  listAgents: async (): Promise<Agent[]> => unwrap(await commands.listAgents()),
};
