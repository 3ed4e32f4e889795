// Starting points for common APIs, from the backend's presets (one list, in Rust): base URL,
// named actions and where the credential goes. Scopes, not the connection, keep agents to
// least privilege: a connection lists what may be granted.

import type { PresetView } from "../backend";

/** A preset as the Add dialog offers it: the backend's preset (base URL, every named action,
 * where the credential goes) with a label and a hint on where to get the credential. */
export type Preset = {
  id: string;
  label: string;
  name: string;
  baseUrl: string;
  /** `NAME=METHOD:PATH` lines. */
  actions: string[];
  /** Where the credential goes: `bearer`, `header:x-api-key`... */
  auth: string;
  /** Where the credential comes from, in one sentence. */
  secretHint: string;
  /** "database": no base URL or actions; its URL is handed to the program by `mandate exec`. */
  kind: "http" | "database";
};

/** The Add dialog's database choice (not a broker preset: a database is not called over HTTP). */
export const DATABASE_CHOICE: Preset = {
  id: "database",
  label: "Database",
  name: "",
  baseUrl: "",
  actions: [],
  auth: "",
  secretHint: "The URL the program connects with, password included (postgres://USER:PASSWORD@HOST:5432/DB).",
  kind: "database",
};

const INFO: Record<string, { label: string; secretHint: string }> = {
  github: { label: "GitHub", secretHint: "A fine-grained personal access token with read-only repository access." },
  slack: { label: "Slack", secretHint: "A bot token (xoxb-…) from your Slack app with read scopes only." },
  stripe: { label: "Stripe", secretHint: "A restricted key (rk_…) with read access to the resources above." },
  openai: { label: "OpenAI", secretHint: "A project API key limited to this project." },
  anthropic: { label: "Anthropic", secretHint: "An API key from a workspace created for this agent." },
  http: { label: "Generic HTTP", secretHint: "Whatever credential the API expects (a bearer token, an API key)." },
};

/** The backend's presets in the order it gives them, labelled; the generic one last, with no
 * name and an `https://` to complete. */
export function presetChoices(views: PresetView[]): Preset[] {
  const out = views.map((v) => ({
    id: v.name,
    label: INFO[v.name]?.label ?? v.name,
    name: v.name === "http" ? "" : v.name,
    baseUrl: v.base_url || "https://",
    actions: v.actions,
    auth: v.auth,
    secretHint: INFO[v.name]?.secretHint ?? "The credential the API expects.",
    kind: "http" as const,
  }));
  return [...out.filter((p) => p.id !== "http"), ...out.filter((p) => p.id === "http"), DATABASE_CHOICE];
}

/** "bearer" → "Authorization: Bearer", "header:x-api-key" → "x-api-key header". */
export function placementLabel(auth: string): string {
  if (auth === "bearer") return "Authorization: Bearer";
  if (auth === "basic") return "Authorization: Basic";
  if (auth.startsWith("header:")) return `${auth.slice(7)} header`;
  if (auth.startsWith("query:")) return `?${auth.slice(6)}= query parameter`;
  return auth;
}

/** The non-blank lines of the actions box. */
export function actionLines(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

/** A readable summary of an action: "GET /repos/**". */
export function actionSummary(a: { method: string; path_pattern: string }): string {
  return `${a.method === "*" ? "any method" : a.method} ${a.path_pattern}`;
}
