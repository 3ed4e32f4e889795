import { describe, expect, it } from "vitest";
import { keyState, matchesQuery, relativeTime, statusBanner, trustReason, trustTone } from "./format";
import type { Agent } from "../backend";

const now = new Date("2026-11-23T09:00:00Z");

function agent(over: Partial<Agent> = {}): Agent {
  return {
    id: "01",
    name: "billing-report-agent",
    purpose: "monthly billing report",
    owner: "founder",
    parent: null,
    config_version: 1,
    status: "active",
    status_reason: null,
    scopes: ["github:repo.read"],
    keys: [],
    trust: {
      state: "PENDING",
      computed: "PENDING",
      score: 3,
      signals: [
        { id: "status", label: "Agent is active", outcome: "pass", contribution: 1, detail: "active" },
        { id: "track_record", label: "Track record", outcome: "warn", contribution: 0, detail: "new" },
      ],
      override: null,
      thresholds: { trusted_min: 70, pending_min: 40 },
      drift: null,
      behaviour_at: null,
      organisation_floor: 0,
    },
    dpop_required: false,
    max_token_ttl_secs: null,
    created_at: "2026-11-23T08:00:00Z",
    updated_at: "2026-11-23T08:00:00Z",
    last_activity: null,
    parents: [],
    held_by_parent: null,
    ...over,
  };
}

describe("relativeTime", () => {
  it("speaks in human units", () => {
    expect(relativeTime("2026-11-23T08:59:30Z", now)).toBe("just now");
    expect(relativeTime("2026-11-23T08:55:00Z", now)).toBe("5 min ago");
    expect(relativeTime("2026-11-23T06:00:00Z", now)).toBe("3 h ago");
    expect(relativeTime("2026-11-22T08:00:00Z", now)).toBe("yesterday");
    expect(relativeTime("2026-11-20T08:00:00Z", now)).toBe("3 days ago");
    expect(relativeTime(null, now)).toBe("never");
    expect(relativeTime("garbage", now)).toBe("unknown");
  });
});

describe("agents filtering and trust", () => {
  it("matches name, purpose, owner and scope", () => {
    const a = agent();
    expect(matchesQuery(a, "")).toBe(true);
    expect(matchesQuery(a, "BILLING")).toBe(true);
    expect(matchesQuery(a, "founder")).toBe(true);
    expect(matchesQuery(a, "repo.read")).toBe(true);
    expect(matchesQuery(a, "slack")).toBe(false);
  });

  it("maps trust states to tones and explains the state", () => {
    expect(trustTone("TRUSTED")).toBe("good");
    expect(trustTone("PENDING")).toBe("warn");
    expect(trustTone("UNTRUSTED")).toBe("bad");
    expect(trustReason(agent())).toBe("new");
    expect(
      trustReason(agent({ trust: { ...agent().trust, override: { state: "TRUSTED", reason: "reviewed" } } })),
    ).toBe("Set by hand: reviewed");
  });
});

import {
  age,
  countdown,
  countdownTone,
  currentToken,
  filterAgents,
  parseScopeList,
  revokeConsequences,
  sortAgents,
  toggleSort,
} from "./format";
import type { OutstandingToken } from "../backend";

function token(over: Partial<OutstandingToken> = {}): OutstandingToken {
  return {
    jti: "j1",
    agent: "billing-report-agent",
    subject: "billing-report-agent",
    actors: [],
    scopes: ["github:repo.read"],
    audiences: ["https://api.github.com"],
    issued_at: "2026-11-23T08:50:00Z",
    expires_at: "2026-11-23T09:05:00Z",
    dpop_bound: false,
    delegation_id: null,
    ...over,
  };
}

describe("countdown", () => {
  it("counts down in minutes and seconds, then hours", () => {
    expect(countdown("2026-11-23T09:14:05Z", now)).toBe("14:05");
    expect(countdown("2026-11-23T09:00:09Z", now)).toBe("0:09");
    expect(countdown("2026-11-23T11:05:00Z", now)).toBe("2 h 05 min");
    expect(countdown("2026-11-23T08:59:59Z", now)).toBe("expired");
    expect(countdown("garbage", now)).toBe("unknown");
  });

  it("turns urgent near the end", () => {
    expect(countdownTone("2026-11-23T09:10:00Z", now)).toBe("good");
    expect(countdownTone("2026-11-23T09:04:00Z", now)).toBe("warn");
    expect(countdownTone("2026-11-23T09:00:30Z", now)).toBe("bad");
  });

  it("takes the token that expires last as the current one", () => {
    const a = token({ jti: "a", expires_at: "2026-11-23T09:05:00Z" });
    const b = token({ jti: "b", expires_at: "2026-11-23T09:10:00Z" });
    const other = token({ jti: "c", agent: "x", expires_at: "2026-11-23T10:00:00Z" });
    expect(currentToken("billing-report-agent", [a, b, other])?.jti).toBe("b");
    expect(currentToken("nobody", [a])).toBeNull();
  });
});

describe("ages", () => {
  it("says how old a key is", () => {
    expect(age("2026-11-23T08:59:50Z", now)).toBe("1 min");
    expect(age("2026-11-23T06:00:00Z", now)).toBe("3 h");
    expect(age("2026-11-22T09:00:00Z", now)).toBe("1 day");
    expect(age("2026-10-24T09:00:00Z", now)).toBe("30 days");
  });
});

describe("agents table", () => {
  const a = agent({ id: "1", name: "alpha", status: "active", last_activity: "2026-11-23T08:00:00Z" });
  const b = agent({ id: "2", name: "beta", status: "suspended", owner: "zoe", last_activity: null });
  const c = agent({
    id: "3",
    name: "gamma",
    status: "revoked",
    owner: "adam",
    trust: { ...agent().trust, state: "UNTRUSTED" },
    last_activity: "2026-11-23T08:30:00Z",
  });

  it("filters by status, trust and text together", () => {
    const f = { query: "", status: "all" as const, trust: "all" as const };
    expect(filterAgents([a, b, c], f)).toHaveLength(3);
    expect(filterAgents([a, b, c], { ...f, status: "suspended" }).map((x) => x.name)).toEqual(["beta"]);
    expect(filterAgents([a, b, c], { ...f, trust: "UNTRUSTED" }).map((x) => x.name)).toEqual(["gamma"]);
    expect(filterAgents([a, b, c], { ...f, query: "ALP" }).map((x) => x.name)).toEqual(["alpha"]);
  });

  it("sorts by a column, both ways, with empty values last", () => {
    const names = (xs: { name: string }[]) => xs.map((x) => x.name);
    expect(names(sortAgents([c, a, b], { key: "name", dir: "asc" }))).toEqual(["alpha", "beta", "gamma"]);
    expect(names(sortAgents([c, a, b], { key: "name", dir: "desc" }))).toEqual(["gamma", "beta", "alpha"]);
    expect(names(sortAgents([a, b, c], { key: "owner", dir: "asc" }))).toEqual(["gamma", "alpha", "beta"]);
    expect(names(sortAgents([a, b, c], { key: "activity", dir: "desc" }))).toEqual(["gamma", "alpha", "beta"]);
    expect(names(sortAgents([c, b, a], { key: "status", dir: "asc" }))).toEqual(["alpha", "beta", "gamma"]);
    const t = token({ agent: "beta" });
    expect(names(sortAgents([a, b, c], { key: "token", dir: "asc" }, [t]))[0]).toBe("beta");
  });

  it("toggles the direction on a second click", () => {
    expect(toggleSort({ key: "name", dir: "asc" }, "name")).toEqual({ key: "name", dir: "desc" });
    expect(toggleSort({ key: "name", dir: "asc" }, "activity")).toEqual({ key: "activity", dir: "desc" });
  });

  it("reads scope lists typed by hand", () => {
    expect(parseScopeList(" github:repo.read, slack:chat.write  github:repo.read ")).toEqual([
      "github:repo.read",
      "slack:chat.write",
    ]);
    expect(parseScopeList("  ")).toEqual([]);
  });
});

describe("revoke confirmation", () => {
  it("names the tokens, the keychain keys and the scopes that stop working", () => {
    const a = agent({
      keys: [
        {
          kid: "k1",
          public_x: "x",
          fingerprint: "SHA256:abc",
          origin: "keychain",
          created_at: "2026-11-23T08:00:00Z",
          expires_at: null,
        },
      ],
    });
    const lines = revokeConsequences(a, [token(), token({ jti: "j2" })]);
    expect(lines[0]).toMatch(/Its 2 tokens stop working at once/);
    expect(lines.join(" ")).toMatch(/private key is deleted from this machine's keychain/);
    expect(lines.join(" ")).toMatch(/github:repo.read/);
    expect(lines.at(-1)).toMatch(/final/);
    expect(revokeConsequences(agent(), [])[0]).toMatch(/can no longer get tokens/);
  });
});

describe("the revoked agent's page", () => {
  const who = (a: { kind: string; name: string }) => a.name;
  const time = (iso: string) => iso.slice(0, 16).replace("T", " ");
  const change = { action: "agent.revoked", by: { kind: "member", id: "m1", name: "ann" }, time: "2026-11-23T09:05:00.000000Z", reason: "key leaked" };

  it("shows one red banner with who revoked it, when and why, the reason once", () => {
    const b = statusBanner(agent({ status: "revoked", status_reason: "key leaked" }), change, who, time)!;
    expect(b.tone).toBe("bad");
    expect(b.title).toBe("Revoked by ann on 2026-11-23 09:05.");
    expect(b.text.split("key leaked").length - 1).toBe(1);
    expect(b.text).toMatch(/Revocation is final/);
  });

  it("never lists a revoked agent's key as active", () => {
    const k = { origin: "keychain" as const, expires_at: null };
    expect(keyState(k, "active", now)).toMatchObject({ label: "active", tone: "good" });
    expect(keyState(k, "revoked", now)).toMatchObject({ label: "destroyed", tone: "bad" });
    expect(keyState({ origin: "registered", expires_at: null }, "revoked", now).label).toBe("refused");
    expect(keyState({ origin: "file", expires_at: "2026-11-23T08:00:00Z" }, "active", now).label).toBe("retired");
  });

  it("says when a parent holds a sub-agent back, and nothing for an unhindered agent", () => {
    expect(statusBanner(agent({}), null, who, time)).toBeNull();
    const b = statusBanner(
      agent({ held_by_parent: { parent: "top-agent", status: "suspended", message: "its parent agent 'top-agent' is suspended, so the sub-agent 'billing-report-agent' gets nothing until 'top-agent' is resumed" } }),
      null,
      who,
      time,
    )!;
    expect(b.tone).toBe("warn");
    expect(b.title).toBe("Held back by its parent agent top-agent.");
    expect(b.text).toMatch(/^Its parent agent 'top-agent' is suspended/);
  });
});
