import { describe, expect, it } from "vitest";
import {
  blastRadius,
  claimRows,
  concretePath,
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
  it("maps findings to surfaces", () => {
    expect(surfacesFromFindings([{ surface: "llm" }, { surface: "llm" }, { surface: "weird" }])).toEqual(["llm", "other"]);
  });
});
