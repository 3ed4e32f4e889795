import { describe, expect, it } from "vitest";
import {
  blastRadius,
  claimRows,
  concretePath,
  defaultScopes,
  exampleCall,
  moveOptionLabel,
  surfacesWithoutTargets,
  untilText,
  formatTtl,
  isReadOnly,
  isWildcard,
  nameProblem,
  parseAction,
  personNameWarning,
  readOnlyScopes,
  scopeTargets,
  snippets,
  suggestName,
  surfacesFromFindings,
  wildcardScopes,
  type ScopeTarget,
} from "./logic";

const github: ScopeTarget = {
  connection: "github",
  createFrom: "github",
  actions: ["repo.read=GET:/repos/**", "user.read=GET:/user", "issues.write=POST:/repos/*/*/issues"].map(parseAction),
};
const api: ScopeTarget = {
  connection: "crm",
  createFrom: null,
  actions: ["read=GET:/**", "anything=*:/contacts/**"].map(parseAction),
};

describe("suggestName", () => {
  it("names the agent after its job", () => {
    expect(suggestName("Monthly billing report")).toBe("monthly-billing-report-agent");
    expect(suggestName("Sync invoices from Stripe to the CRM every night")).toBe("sync-invoices-stripe-crm-agent");
  });
  it("drops filler, accents and a trailing agent/bot", () => {
    expect(suggestName("The résumé screening bot")).toBe("resume-screening-agent");
  });
  it("starts with a letter and stays within 63 characters", () => {
    expect(suggestName("2024 taxes")).toBe("taxes-agent");
    const long = suggestName("a".repeat(80) + " report");
    expect(long.length).toBeLessThanOrEqual(63);
    expect(nameProblem(long)).toBeNull();
    expect(suggestName("!!! 123")).toBe("");
  });
});

describe("nameProblem", () => {
  it("mirrors the core's rule", () => {
    expect(nameProblem("billing-report-agent")).toBeNull();
    expect(nameProblem("")).toMatch(/Give the agent a name/);
    expect(nameProblem("Billing")).toMatch(/lowercase letter/);
    expect(nameProblem("billing_report")).toMatch(/dashes only/);
    expect(nameProblem("x")).toMatch(/at least 2/);
  });
});

describe("personNameWarning", () => {
  it("warns on given names and member names", () => {
    expect(personNameWarning("sarah")).toMatch(/looks like a person's name/);
    expect(personNameWarning("john-smith")).toMatch(/person's name/);
    expect(personNameWarning("founder", ["founder"])).toMatch(/team member's name/);
    expect(personNameWarning("ada-report-agent", ["ada"])).toMatch(/blames ada/);
  });
  it("stays quiet for job names", () => {
    expect(personNameWarning("billing-report-agent", ["founder"])).toBeNull();
    expect(personNameWarning("mark-invoices-paid-agent")).toBeNull();
    expect(personNameWarning("")).toBeNull();
  });
});

describe("actions", () => {
  it("parses specs and tells reads from writes", () => {
    expect(parseAction("issues.write=POST:/repos/*/*/issues")).toEqual({
      name: "issues.write",
      method: "POST",
      path: "/repos/*/*/issues",
    });
    expect(isReadOnly(parseAction("a=GET:/x"))).toBe(true);
    expect(isReadOnly(parseAction("a=POST:/x"))).toBe(false);
    expect(isReadOnly(parseAction("a=*:/x"))).toBe(false);
  });
  it("flags any-method and whole-API actions as wildcards", () => {
    expect(isWildcard(parseAction("read=GET:/**"))).toBe(true);
    expect(isWildcard(parseAction("anything=*:/contacts/**"))).toBe(true);
    expect(isWildcard(parseAction("repo.read=GET:/repos/**"))).toBe(false);
  });
  it("starts from the read-only preset and finds chosen wildcards", () => {
    expect(readOnlyScopes(github)).toEqual(["github:repo.read", "github:user.read"]);
    expect(readOnlyScopes(api)).toEqual(["crm:read"]);
    expect(wildcardScopes([github, api], ["github:repo.read", "crm:read"])).toEqual(["crm:read"]);
    expect(wildcardScopes([github, api], ["github:issues.write"])).toEqual([]);
  });
});

describe("blastRadius", () => {
  it("says what the agent can and cannot do", () => {
    const lines = blastRadius([github, api], ["github:repo.read"], 900);
    expect(lines[0]).toBe("Can use github: repo.read (GET /repos/**).");
    expect(lines).toContain("Cannot change anything: every action is read-only.");
    expect(lines).toContain("Cannot reach crm, or any system not listed here.");
    expect(lines.at(-1)).toMatch(/at most 15 minutes/);
  });
  it("counts writes and names wildcards", () => {
    const lines = blastRadius([github, api], ["github:issues.write", "crm:anything"], 3600);
    expect(lines.join(" ")).toMatch(/2 write actions/);
    expect(lines[1]).toMatch(/any method \/contacts\/\*\*\) — including everything under a wildcard/);
    expect(lines.at(-1)).toMatch(/1 hour/);
  });
  it("explains an agent with no scopes", () => {
    expect(blastRadius([github], [], 900)[0]).toMatch(/Can do nothing yet/);
  });
  it("says plainly that the program holds a database URL", () => {
    const db: ScopeTarget = { connection: "app", createFrom: "database", kind: "database", variable: "DATABASE_URL", actions: [{ name: "connect", method: "", path: "" }] };
    const lines = blastRadius([github, db], ["github:repo.read", "app:connect"], 900);
    expect(lines[1]).toBe(
      "Is handed the URL of the app database as DATABASE_URL by mandate exec, and holds it while it runs: it may do whatever that URL's database user may.",
    );
    expect(lines).not.toContain("Cannot change anything: every action is read-only.");
    expect(lines[2]).toMatch(/in the database it is limited only by the database user/);
  });
});

describe("defaults (issue 17: no broad reads of private data pre-ticked)", () => {
  it("ticks only the preset's narrow reads, never a database", () => {
    const gh: ScopeTarget = { ...github, defaults: ["user.read"] };
    expect(defaultScopes(gh)).toEqual(["github:user.read"]);
    expect(defaultScopes(github)).toEqual([]);
    const slack: ScopeTarget = {
      connection: "slack",
      createFrom: "slack",
      actions: ["conversations.read=GET:/conversations.list", "history.read=GET:/conversations.history"].map(parseAction),
      defaults: ["conversations.read"],
    };
    expect(defaultScopes(slack)).not.toContain("slack:history.read");
  });
});

describe("formatting", () => {
  it("formats lifetimes", () => {
    expect(formatTtl(900)).toBe("15 minutes");
    expect(formatTtl(3600)).toBe("1 hour");
    expect(formatTtl(5400)).toBe("1 h 30 min");
    expect(formatTtl(1)).toBe("1 second");
  });
  it("turns patterns into callable paths", () => {
    expect(concretePath("/repos/**")).toBe("/repos");
    expect(concretePath("/user")).toBe("/user");
    expect(concretePath("/users/*/repos")).toBe("/users/me/repos");
    expect(concretePath("/**")).toBe("/");
  });
  it("orders claims and shows times", () => {
    const rows = claimRows({ jti: "j", sub: "bot", exp: 0, aud: ["a", "b"], zz: 1 });
    expect(rows.map((r) => r.name)).toEqual(["sub", "aud", "exp", "jti", "zz"]);
    expect(rows[1].value).toBe('["a","b"]');
    expect(rows[2].value).toMatch(/^0 \(/);
  });
});

describe("snippets", () => {
  it("fills in the agent's real names for a keychain key", () => {
    const s = snippets({
      agent: "billing-report-agent",
      port: 6263,
      keyInKeychain: true,
      kid: "k1",
      example: { connection: "github", path: "/user" },
    });
    expect(s.map((x) => x.id)).toEqual(["token", "exec", "curl", "python"]);
    expect(s[0].text).toBe("mandate token billing-report-agent");
    expect(s[2].text).toContain("$(mandate token billing-report-agent)");
    expect(s[2].text).toContain("http://127.0.0.1:6263/proxy/github/user");
    expect(s[3].text).toContain('"mandate", "token", "billing-report-agent"');
    expect(s[1].text).toBe("mandate exec billing-report-agent -- <command that starts it>");
  });
  it("runs the program the scan found, and calls a real endpoint of the preset", () => {
    const gh: ScopeTarget = { ...github, examples: { "repo.read": "/repos/octocat/Hello-World", "user.read": "/user" } };
    const example = exampleCall([gh], ["github:repo.read"]);
    expect(example).toEqual({ connection: "github", path: "/repos/octocat/Hello-World" });
    const s = snippets({ agent: "bot", port: 6263, keyInKeychain: true, kid: null, example, command: "python3 main.py" });
    expect(s[1].text).toBe("mandate exec bot -- python3 main.py");
    expect(s[2].text).toContain("http://127.0.0.1:6263/proxy/github/repos/octocat/Hello-World");
    expect(s.map((x) => x.text).join("\n")).not.toContain("/proxy/github/repos\n");
    // A custom connection: only a fixed path, never a made-up one.
    expect(exampleCall([api], ["crm:read"])).toBeNull();
  });
  it("signs with the agent's own key when it was pasted", () => {
    const s = snippets({ agent: "remote-agent", port: 7000, keyInKeychain: false, kid: "kid-9", example: null });
    expect(s[0].text).toContain('"iss": "remote-agent"');
    expect(s[0].text).toContain('headers={"kid": "kid-9"}');
    expect(s[0].text).toContain('TOKEN_URL = "http://127.0.0.1:7000/oauth2/token"');
    expect(s.some((x) => x.text.includes("mandate token"))).toBe(false);
  });
});

describe("scopeTargets", () => {
  const presets = [
    { name: "github", actions: ["repo.read=GET:/repos/**", "issues.write=POST:/repos/*/*/issues"] },
    { name: "openai", actions: ["models.read=GET:/models/**"] },
    { name: "anthropic", actions: ["models.read=GET:/v1/models/**"] },
  ];
  const crm = { name: "crm", actions: [{ name: "read", method: "GET", path_pattern: "/contacts/**" }] };

  it("offers presets for chosen surfaces, then the other connections", () => {
    const t = scopeTargets(["code_host"], [], [crm], presets);
    expect(t.map((x) => [x.connection, x.createFrom, x.suggested])).toEqual([
      ["github", "github", true],
      ["crm", null, false],
    ]);
  });
  it("uses an existing connection of the preset's name instead of making one", () => {
    const gh = { name: "github", actions: [{ name: "user.read", method: "GET", path_pattern: "/user" }] };
    const t = scopeTargets(["code_host"], [], [gh], presets);
    expect(t).toHaveLength(1);
    expect(t[0].createFrom).toBeNull();
    expect(t[0].actions[0].name).toBe("user.read");
  });
  it("narrows a surface to the presets the scan found", () => {
    const t = scopeTargets(["llm"], [{ surface: "llm", preset: "anthropic" }], [], presets);
    expect(t.map((x) => x.connection)).toEqual(["anthropic"]);
    expect(scopeTargets(["llm"], [], [], presets).map((x) => x.connection)).toEqual(["openai", "anthropic"]);
  });
  it("keeps a ticked Database at Scope: one database connection per URL found", () => {
    const t = scopeTargets(
      ["database"],
      [{ surface: "database", preset: null, suggested_connection: "app", variable: "DATABASE_URL" }],
      [{ name: "app", kind: "http", actions: [] }],
      presets,
    );
    expect(t[0]).toMatchObject({ connection: "app-db", createFrom: "database", kind: "database", variable: "DATABASE_URL", defaults: [] });
    expect(t[0].actions.map((a) => a.name)).toEqual(["connect"]);
    // Ticked without a scan: a database connection to make, named database.
    expect(scopeTargets(["database"], [], [], presets)[0]).toMatchObject({ connection: "database", kind: "database" });
    // An existing database connection is offered instead.
    const wh = { name: "warehouse", kind: "database" as const, variable: "WAREHOUSE_URL", actions: [] };
    expect(scopeTargets(["database"], [], [wh], presets)[0]).toMatchObject({ connection: "warehouse", createFrom: null, variable: "WAREHOUSE_URL" });
    expect(surfacesWithoutTargets(["database", "tickets", "code_host", "cloud"])).toEqual(["Ticket tracker", "Cloud"]);
  });
  it("labels where a credential may move", () => {
    expect(moveOptionLabel({ connection: "app", kind: "database", exists: false, has_secret: false })).toBe("app (new database connection)");
    expect(moveOptionLabel({ connection: "github", kind: "http", exists: true, has_secret: true })).toMatch(/asked before it is replaced/);
    const now = new Date(2026, 11, 4, 9, 0);
    expect(untilText(new Date(2026, 11, 5, 9, 5).toISOString(), now)).toBe("tomorrow 09:05");
  });
  it("maps findings to surfaces", () => {
    expect(surfacesFromFindings([{ surface: "llm" }, { surface: "llm" }, { surface: "weird" }])).toEqual(["llm", "other"]);
  });
});
