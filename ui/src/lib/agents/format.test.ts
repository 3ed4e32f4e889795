import { describe, expect, it } from "vitest";
import { matchesQuery, relativeTime, trustReason, trustTone } from "./format";
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
    },
    dpop_required: false,
    max_token_ttl_secs: null,
    created_at: "2026-11-23T08:00:00Z",
    updated_at: "2026-11-23T08:00:00Z",
    last_activity: null,
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
