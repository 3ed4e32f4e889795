// The migration wizard's rules, kept free of Svelte so they are unit-tested: which surfaces
// an agent may log in to, how a job name is suggested and when a name looks like a person's,
// which actions start checked (read-only), what the chosen scopes let the agent do in words,
// which choices are wildcards that need a confirmation, and the copy-ready snippets.

/** Where agents commonly log in today, and the presets that fit. */
export type Surface = { id: string; label: string; hint: string; presets: string[] };

export const SURFACES: Surface[] = [
  { id: "code_host", label: "Code host", hint: "GitHub", presets: ["github"] },
  { id: "database", label: "Database", hint: "Postgres, MySQL, Redis", presets: [] },
  { id: "tickets", label: "Ticket tracker", hint: "Linear, Jira", presets: [] },
  { id: "billing", label: "Billing", hint: "Stripe", presets: ["stripe"] },
  { id: "chat", label: "Chat", hint: "Slack", presets: ["slack"] },
  { id: "calendar", label: "Calendar", hint: "Google Calendar", presets: [] },
  { id: "llm", label: "LLM APIs", hint: "OpenAI, Anthropic", presets: ["openai", "anthropic"] },
  { id: "cloud", label: "Cloud", hint: "AWS, Google Cloud", presets: [] },
  { id: "other", label: "Other", hint: "any HTTP API", presets: [] },
];

export function surfaceLabel(id: string): string {
  return SURFACES.find((s) => s.id === id)?.label ?? id;
}

const FILLER = new Set([
  "a", "an", "the", "and", "or", "for", "of", "to", "my", "our", "with", "in", "on", "from",
  "into", "by", "at", "that", "which", "who", "it", "its", "is", "are", "be", "this", "all",
  "agent", "bot",
]);

const MAX_NAME = 63;

/** A job name from the purpose: "Monthly billing report for investors" → "monthly-billing-report-investors-agent"
 * (at most four words, then "-agent"); "" when the purpose has no usable word. */
export function suggestName(purpose: string): string {
  const words = purpose
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .split(/[^a-z0-9]+/)
    .filter((w) => w && !FILLER.has(w));
  const first = words.findIndex((w) => /^[a-z]/.test(w));
  if (first < 0) return "";
  const base = words.slice(first, first + 4).join("-");
  return `${base.slice(0, MAX_NAME - 6).replace(/-+$/, "")}-agent`;
}

/** Why `name` breaks the naming rule, or null when it is fine (mirrors the core's check). */
export function nameProblem(name: string): string | null {
  const s = name.trim();
  if (s.length === 0) return "Give the agent a name.";
  if (s.length < 2) return "A name needs at least 2 characters.";
  if (s.length > MAX_NAME) return `A name has at most ${MAX_NAME} characters.`;
  if (!/^[a-z]/.test(s)) return "A name starts with a lowercase letter.";
  if (!/^[a-z0-9-]+$/.test(s)) return "Use lowercase letters, digits and dashes only.";
  return null;
}

// Common given names (English-speaking and European teams), enough to catch "sarah" or
// "john-smith" used as an agent's name. Not a census: the warning is a nudge, never a block.
const GIVEN_NAMES = new Set(
  (
    "aaron adam adrian alex alexander alice amanda amy andrea andrew anna anne anthony ben " +
    "benjamin bob brian carlos carol charles charlie chris christina christopher claire daniel " +
    "david diana elena elizabeth emily emma eric eva frank george hannah harry helen henry ian " +
    "isabel jack jacob james jane jason jean jennifer jessica jim joe john jonathan jose joseph " +
    "julia julie kate katie kevin laura lauren leo linda lisa lucas lucy luis maria mark martin " +
    "mary matt matthew max michael michelle mike nancy nick nicole olivia oscar paul peter " +
    "rachel richard robert ryan sam samuel sara sarah scott sophia sophie steve steven susan " +
    "thomas tim tom victoria william"
  ).split(" "),
);

/** A warning when the name looks like a person's (a given name, or a team member's name),
 * since every log line will name it; null otherwise. */
export function personNameWarning(name: string, members: string[] = []): string | null {
  const s = name.trim().toLowerCase();
  if (!s) return null;
  const parts = s.split("-").filter(Boolean);
  const member = members.find((m) => {
    const mm = m.trim().toLowerCase();
    return mm && (s === mm || parts.includes(mm));
  });
  if (member) {
    return `“${name.trim()}” is also a team member's name. Name the agent after its job, so no log blames ${member} for what it does.`;
  }
  if (parts.length > 0 && parts.length <= 2 && GIVEN_NAMES.has(parts[0])) {
    return `“${name.trim()}” looks like a person's name. Name the agent after its job (for example “invoice-sync-agent”), so logs never name a person for what it does.`;
  }
  return null;
}

/** `repo.read=GET:/repos/**` → its parts. */
export type ActionSpec = { name: string; method: string; path: string };

export function parseAction(spec: string): ActionSpec {
  const eq = spec.indexOf("=");
  const name = eq < 0 ? spec : spec.slice(0, eq);
  const rest = eq < 0 ? "" : spec.slice(eq + 1);
  const colon = rest.indexOf(":");
  return colon < 0
    ? { name, method: "*", path: rest }
    : { name, method: rest.slice(0, colon).toUpperCase(), path: rest.slice(colon + 1) };
}

/** Reads only: GET or HEAD. The wizard starts from these. */
export function isReadOnly(a: ActionSpec): boolean {
  return a.method === "GET" || a.method === "HEAD";
}

/** Covers any method, or the whole API: a wildcard that needs an explicit confirmation. */
export function isWildcard(a: ActionSpec): boolean {
  return a.method === "*" || /^\/?\*\*?$/.test(a.path.trim());
}

/** One connection in the Scope step: an existing one, or one the wizard makes (from a preset,
 * or a database connection for a database URL the scan found). */
export type ScopeTarget = {
  connection: string;
  /** How it will be made when it does not exist yet: a preset's name, or "database". */
  createFrom: string | null;
  /** "http": an API the broker calls; "database": its URL is handed to the program. */
  kind?: "http" | "database";
  /** For a database: the variable `mandate exec` hands its URL over in. */
  variable?: string | null;
  actions: ActionSpec[];
  /** Action names ticked by default: the preset's narrow reads of non-sensitive data. */
  defaults?: string[];
  /** A real request per action name (`user.read` → `/user`), for the proof's examples. */
  examples?: Record<string, string>;
};

/** The one action of a database connection. */
export const DATABASE_ACTION: ActionSpec = { name: "connect", method: "", path: "" };

export function isDatabase(t: { kind?: string }): boolean {
  return t.kind === "database";
}

/** The read-only actions of a target, as `connection:action` scopes. */
export function readOnlyScopes(t: ScopeTarget): string[] {
  return t.actions.filter(isReadOnly).map((a) => `${t.connection}:${a.name}`);
}

/** What a target starts with ticked: its preset's narrow, non-sensitive reads only (the token's
 * own account, the list of models). Reads of private content and a database's URL are the
 * person's explicit choice. */
export function defaultScopes(t: ScopeTarget): string[] {
  return (t.defaults ?? [])
    .filter((n) => t.actions.some((a) => a.name === n))
    .map((n) => `${t.connection}:${n}`);
}

/** The chosen actions that are wildcards, as `connection:action`. */
export function wildcardScopes(targets: ScopeTarget[], chosen: string[]): string[] {
  return targets.flatMap((t) =>
    t.actions.filter((a) => isWildcard(a) && chosen.includes(`${t.connection}:${a.name}`)).map((a) => `${t.connection}:${a.name}`),
  );
}

function list(items: string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/** What the chosen scopes let the agent do, in words: one "can" line per connection, what it
 * cannot do, and how long a token lives. */
export function blastRadius(targets: ScopeTarget[], chosen: string[], ttlSecs: number): string[] {
  const lines: string[] = [];
  let writes = 0;
  let databases = 0;
  const untouched: string[] = [];
  for (const t of targets) {
    const picked = t.actions.filter((a) => chosen.includes(`${t.connection}:${a.name}`));
    if (picked.length === 0) {
      untouched.push(t.connection);
      continue;
    }
    if (isDatabase(t)) {
      databases++;
      lines.push(
        `Is handed the URL of the ${t.connection} database as ${t.variable ?? "DATABASE_URL"} by mandate exec, and holds it while it runs: it may do whatever that URL's database user may.`,
      );
      continue;
    }
    writes += picked.filter((a) => !isReadOnly(a)).length;
    const what = picked.map((a) => `${a.name} (${a.method === "*" ? "any method" : a.method} ${a.path})`);
    const wild = picked.some(isWildcard) ? " — including everything under a wildcard" : "";
    lines.push(`Can use ${t.connection}: ${list(what)}${wild}.`);
  }
  if (lines.length === 0) {
    return ["Can do nothing yet: it has no scopes, so every token request for a connection is refused."];
  }
  const apis = writes === 0 ? "every API action is read-only" : `it can change data through ${writes} API write action${writes === 1 ? "" : "s"}`;
  lines.push(
    databases > 0
      ? `Through the APIs, ${apis}; in ${databases === 1 ? "the database" : "the databases"} it is limited only by the database user.`
      : writes === 0
        ? "Cannot change anything: every action is read-only."
        : `Can change data through ${writes} write action${writes === 1 ? "" : "s"}; everything else is read-only.`,
  );
  lines.push(
    untouched.length > 0
      ? `Cannot reach ${list(untouched)}, or any system not listed here.`
      : "Cannot reach any system not listed here.",
  );
  lines.push(`Each token lives at most ${formatTtl(ttlSecs)}; revoking the agent stops it at once.`);
  return lines;
}

/** 900 → "15 minutes", 3600 → "1 hour", 5400 → "1 h 30 min". */
export function formatTtl(secs: number): string {
  if (secs < 60) return `${secs} second${secs === 1 ? "" : "s"}`;
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  if (h === 0) return `${m} minute${m === 1 ? "" : "s"}`;
  if (m === 0) return `${h} hour${h === 1 ? "" : "s"}`;
  return `${h} h ${m} min`;
}

export const TTL_CHOICES: { secs: number; label: string }[] = [
  { secs: 300, label: "5 minutes" },
  { secs: 900, label: "15 minutes (recommended)" },
  { secs: 3600, label: "1 hour" },
  { secs: 8 * 3600, label: "8 hours" },
  { secs: 24 * 3600, label: "24 hours (the maximum)" },
];

/** The copy-ready ways the agent gets a token, with its real names filled in. */
export type Snippet = { id: string; title: string; text: string };

export function snippets(opts: {
  agent: string;
  port: number;
  keyInKeychain: boolean;
  kid: string | null;
  /** A connection the agent can reach, with one real request it may make (`/user`). */
  example: { connection: string; path: string } | null;
  /** How the scanned project is started (`python3 main.py`), when the scan could tell. */
  command?: string | null;
}): Snippet[] {
  const { agent, port, keyInKeychain, kid, example } = opts;
  const base = `http://127.0.0.1:${port}`;
  const call = example ? `${base}/proxy/${example.connection}${example.path}` : `${base}/.well-known/oauth-authorization-server`;
  const out: Snippet[] = [];
  if (keyInKeychain) {
    out.push({ id: "token", title: "Print a token (like gcloud auth print-access-token)", text: `mandate token ${agent}` });
    out.push({
      id: "exec",
      title: opts.command
        ? "Run the agent with its own identity, from its project folder"
        : "Run the agent with its own identity (put the command that starts it after --)",
      text: `mandate exec ${agent} -- ${opts.command ?? "<command that starts it>"}`,
    });
    out.push({
      id: "curl",
      title: example ? `Call ${example.connection} through Mandate with curl` : "Call with curl",
      text: `curl -H "Authorization: Bearer $(mandate token ${agent})" \\\n  ${call}`,
    });
    out.push({
      id: "python",
      title: "Python",
      text: [
        "import subprocess, urllib.request",
        "",
        `token = subprocess.check_output(["mandate", "token", "${agent}"], text=True).strip()`,
        `req = urllib.request.Request("${call}",`,
        `                             headers={"Authorization": f"Bearer {token}"})`,
        "print(urllib.request.urlopen(req).read().decode())",
      ].join("\n"),
    });
  } else {
    out.push({
      id: "python",
      title: "Python (the agent signs with its own private key; pip install pyjwt[crypto] requests)",
      text: [
        "import time, uuid, jwt, requests",
        "",
        `TOKEN_URL = "${base}/oauth2/token"`,
        'key = open("agent-key.pem").read()  # the private half of the key you pasted',
        "now = int(time.time())",
        "assertion = jwt.encode(",
        `    {"iss": "${agent}", "sub": "${agent}", "aud": TOKEN_URL,`,
        '     "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())},',
        `    key, algorithm="EdDSA", headers={"kid": "${kid ?? "KEY-ID"}"})`,
        "token = requests.post(TOKEN_URL, data={",
        '    "grant_type": "client_credentials",',
        '    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",',
        '    "client_assertion": assertion}).json()["access_token"]',
        `print(requests.get("${call}", headers={"Authorization": f"Bearer {token}"}).text)`,
      ].join("\n"),
    });
    out.push({
      id: "curl",
      title: "Then call with curl",
      text: `curl -H "Authorization: Bearer $TOKEN" \\\n  ${call}`,
    });
  }
  return out;
}

/** `/repos/**` → `/repos`, `/users/*` → `/users/me`: a path one can paste and call. */
export function concretePath(pattern: string): string {
  const p = pattern
    .replace(/\/\*\*$/, "")
    .replace(/\*\*/g, "x")
    .replace(/\*/g, "me");
  return p === "" ? "/" : p;
}

/** Claims worth showing first, in this order; the rest follow. */
const CLAIM_ORDER = ["sub", "iss", "aud", "scope", "client_id", "exp", "iat", "jti", "act", "cnf"];

/** A claim as one display row; times as local dates. */
export function claimRows(claims: Record<string, unknown>): { name: string; value: string }[] {
  const keys = Object.keys(claims).sort((a, b) => {
    const ia = CLAIM_ORDER.indexOf(a);
    const ib = CLAIM_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  return keys.map((name) => {
    const v = claims[name];
    let value: string;
    if ((name === "exp" || name === "iat" || name === "nbf") && typeof v === "number") {
      value = `${v} (${new Date(v * 1000).toLocaleString()})`;
    } else if (typeof v === "string") {
      value = v;
    } else {
      value = JSON.stringify(v);
    }
    return { name, value };
  });
}

/** The surfaces a scan's findings point at (checked for the person in step 1). */
export function surfacesFromFindings(findings: { surface: string }[]): string[] {
  const known = new Set(SURFACES.map((s) => s.id));
  return [...new Set(findings.map((f) => (known.has(f.surface) ? f.surface : "other")))];
}

type PresetInfo = { name: string; actions: string[]; default_actions?: string[]; examples?: { action: string; path: string }[] };
type ConnectionInfo = {
  name: string;
  kind?: "http" | "database";
  preset?: string | null;
  variable?: string | null;
  actions: { name: string; method: string; path_pattern: string }[];
};

/** What the Scope step offers: for each chosen surface with presets, the existing connection
 * of that name or one to make from the preset (only the presets the scan found, when it found
 * some); for a chosen Database, a database connection per database URL the scan found (or one
 * named `database`, or the existing database connections); then every other existing
 * connection. `suggested` marks the ones tied to a chosen surface; their `defaults` start
 * checked. */
export function scopeTargets(
  surfaces: string[],
  findings: { surface: string; preset: string | null; suggested_connection?: string | null; variable?: string | null }[],
  connections: ConnectionInfo[],
  presets: PresetInfo[],
): (ScopeTarget & { suggested: boolean })[] {
  const out: (ScopeTarget & { suggested: boolean })[] = [];
  const seen = new Set<string>();
  const presetOf = (name: string | null | undefined) => presets.find((x) => x.name === name);
  const examplesOf = (p: PresetInfo | undefined) => Object.fromEntries((p?.examples ?? []).map((e) => [e.action, e.path]));
  const fromConnection = (c: ConnectionInfo, suggested: boolean): ScopeTarget & { suggested: boolean } => {
    const p = presetOf(c.preset);
    return {
      connection: c.name,
      createFrom: null,
      kind: c.kind ?? "http",
      variable: c.variable ?? null,
      suggested,
      actions: c.kind === "database" ? [DATABASE_ACTION] : c.actions.map((a) => ({ name: a.name, method: a.method, path: a.path_pattern })),
      defaults: c.kind === "database" ? [] : (p?.default_actions ?? []),
      examples: examplesOf(p),
    };
  };
  const newDatabase = (name: string, variable: string | null | undefined) => ({
    connection: name,
    createFrom: "database",
    kind: "database" as const,
    variable: variable ?? "DATABASE_URL",
    suggested: true,
    actions: [DATABASE_ACTION],
    defaults: [],
  });
  for (const s of SURFACES) {
    if (!surfaces.includes(s.id)) continue;
    if (s.id === "database") {
      const urls = findings.filter((f) => f.surface === "database");
      const existingDbs = connections.filter((c) => c.kind === "database");
      if (urls.length === 0 && existingDbs.length > 0) {
        for (const c of existingDbs) if (!seen.has(c.name)) (seen.add(c.name), out.push(fromConnection(c, true)));
        continue;
      }
      for (const f of urls.length > 0 ? urls : [{ suggested_connection: "database", variable: "DATABASE_URL" }]) {
        const base = f.suggested_connection ?? "database";
        const existing = connections.find((c) => c.name === base);
        if (existing?.kind === "database") {
          if (!seen.has(base)) (seen.add(base), out.push(fromConnection(existing, true)));
          continue;
        }
        const taken = (n: string) => seen.has(n) || connections.some((c) => c.name === n);
        let name = taken(base) ? `${base}-db` : base;
        for (let i = 2; taken(name); i++) name = `${base}-${i}`;
        seen.add(name);
        out.push(newDatabase(name, f.variable));
      }
      continue;
    }
    const found = findings.filter((f) => f.surface === s.id && f.preset).map((f) => f.preset as string);
    const wanted = found.length > 0 ? s.presets.filter((p) => found.includes(p)) : s.presets;
    for (const p of wanted) {
      if (seen.has(p)) continue;
      const existing = connections.find((c) => c.name === p);
      const preset = presetOf(p);
      if (existing) out.push(fromConnection(existing, true));
      else if (preset)
        out.push({
          connection: p,
          createFrom: p,
          kind: "http",
          suggested: true,
          actions: preset.actions.map(parseAction),
          defaults: preset.default_actions ?? [],
          examples: examplesOf(preset),
        });
      else continue;
      seen.add(p);
    }
  }
  for (const c of connections) {
    if (!seen.has(c.name)) {
      seen.add(c.name);
      out.push(fromConnection(c, false));
    }
  }
  return out;
}

/** The surfaces the person ticked that the Scope step has nothing for (no preset, no found
 * credential): they are added on the Connections screen and granted from the agent's page. */
export function surfacesWithoutTargets(surfaces: string[]): string[] {
  return SURFACES.filter((s) => surfaces.includes(s.id) && s.presets.length === 0 && s.id !== "database").map((s) => s.label);
}

/** One request the agent may make, for the proof's copy-ready lines: a chosen read action with
 * a real example request (`/user`), else a chosen read of a fixed path, else none. */
export function exampleCall(targets: ScopeTarget[], chosen: string[]): { connection: string; path: string } | null {
  const reads = targets.flatMap((t) =>
    isDatabase(t) ? [] : t.actions.filter((a) => isReadOnly(a) && chosen.includes(`${t.connection}:${a.name}`)).map((a) => ({ t, a })),
  );
  // A default action's example first: the narrowest request (`/user`), the likeliest to work.
  const real =
    reads.find(({ t, a }) => t.examples?.[a.name] && t.defaults?.includes(a.name)) ?? reads.find(({ t, a }) => t.examples?.[a.name]);
  if (real) return { connection: real.t.connection, path: real.t.examples![real.a.name] };
  const fixed = reads.find(({ a }) => !a.path.includes("*"));
  return fixed ? { connection: fixed.t.connection, path: fixed.a.path } : null;
}

/** A connection a found credential may move into, as the Rotate step's menu shows it. */
export function moveOptionLabel(o: { connection: string; kind: string; exists: boolean; has_secret: boolean }): string {
  if (!o.exists) return o.kind === "database" ? `${o.connection} (new database connection)` : `${o.connection} (new)`;
  if (o.has_secret) return `${o.connection} (holds a secret: you will be asked before it is replaced)`;
  return o.connection;
}

/** "tomorrow 10:42" / "10:42" / a date, for undo windows (local time). */
export function untilText(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const hm = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  const day = (x: Date) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((day(d) - day(now)) / 86_400_000);
  if (days === 0) return `today ${hm}`;
  if (days === 1) return `tomorrow ${hm}`;
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")} ${hm}`;
}
