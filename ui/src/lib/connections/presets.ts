// Starting points for common APIs: the base URL and read-only actions. People can add write
// actions themselves; starting read-only keeps least privilege the default.

export type Preset = {
  id: string;
  label: string;
  name: string;
  baseUrl: string;
  /** `NAME=METHOD:PATH` lines. */
  actions: string[];
  /** Where the credential comes from, in one sentence. */
  secretHint: string;
};

export const PRESETS: Preset[] = [
  {
    id: "github",
    label: "GitHub",
    name: "github",
    baseUrl: "https://api.github.com",
    actions: ["repo.read=GET:/repos/**", "user.read=GET:/user", "org.read=GET:/orgs/**"],
    secretHint: "A fine-grained personal access token with read-only repository access.",
  },
  {
    id: "slack",
    label: "Slack",
    name: "slack",
    baseUrl: "https://slack.com/api",
    actions: ["channels.read=GET:/conversations.list", "history.read=GET:/conversations.history", "users.read=GET:/users.list"],
    secretHint: "A bot token (xoxb-…) from your Slack app with read scopes only.",
  },
  {
    id: "stripe",
    label: "Stripe",
    name: "stripe",
    baseUrl: "https://api.stripe.com",
    actions: ["invoices.read=GET:/v1/invoices/**", "customers.read=GET:/v1/customers/**", "charges.read=GET:/v1/charges/**"],
    secretHint: "A restricted key (rk_…) with read access to the resources above.",
  },
  {
    id: "openai",
    label: "OpenAI",
    name: "openai",
    baseUrl: "https://api.openai.com",
    actions: ["models.read=GET:/v1/models/**", "files.read=GET:/v1/files/**"],
    secretHint: "A project API key limited to this project.",
  },
  {
    id: "anthropic",
    label: "Anthropic",
    name: "anthropic",
    baseUrl: "https://api.anthropic.com",
    actions: ["models.read=GET:/v1/models/**"],
    secretHint: "An API key from a workspace created for this agent.",
  },
  {
    id: "http",
    label: "Generic HTTP",
    name: "",
    baseUrl: "https://",
    actions: ["read=GET:/**"],
    secretHint: "Whatever credential the API expects (a bearer token, an API key).",
  },
];

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
