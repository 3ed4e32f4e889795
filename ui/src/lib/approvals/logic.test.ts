import { describe, expect, it } from "vitest";
import type { Approval } from "../backend";
import { WINDOWS, askLine, chainLine, decisionLine, signalsThatMatter, timeLeft } from "./logic";

const base: Approval = {
  id: "apr_1",
  agent: "billing-report-agent",
  connection: "github",
  action: "github:repo.read",
  on_behalf_of: null,
  why: "the agent is PENDING (score 45) but it requires at least TRUSTED",
  trust_state: "PENDING",
  trust_score: 45,
  status: "pending",
  requested_at: "2026-12-04T10:00:00Z",
  expires_at: "2026-12-04T11:00:00Z",
  held_until: "2026-12-04T10:01:00Z",
  decided_by: null,
  decided_at: null,
  reason: null,
  valid_until: null,
};

describe("approvals inbox wording", () => {
  it("says who asks for what, and on whose behalf", () => {
    expect(askLine(base)).toBe("billing-report-agent asks to call github:repo.read");
    expect(askLine({ ...base, on_behalf_of: "ana" })).toBe(
      "billing-report-agent asks to call github:repo.read for ana",
    );
  });

  it("offers once, 15 minutes, an hour and today, in that order", () => {
    expect(WINDOWS.map((w) => w.window)).toEqual(["once", "minutes15", "hour", "today"]);
  });

  it("names the approver, the time box and the reason of a denial", () => {
    const now = new Date("2026-12-04T10:30:00Z");
    expect(decisionLine(base, now)).toBeNull();
    expect(decisionLine(base, new Date("2026-12-04T12:00:00Z"))).toBe("Nobody answered; it expired.");
    expect(
      decisionLine({ ...base, status: "approved", decided_by: "founder", valid_until: "2026-12-04T11:30:00Z" }, now),
    ).toBe("Approved by founder until 11:30 UTC.");
    expect(decisionLine({ ...base, status: "approved", decided_by: "founder" }, now)).toBe("Approved once by founder.");
    expect(decisionLine({ ...base, status: "denied", decided_by: "founder", reason: "audit freeze" }, now)).toBe(
      "Denied by founder: audit freeze",
    );
  });
});

describe("what the inbox adds about the agent", () => {
  const signal = (id: string, outcome: "pass" | "warn" | "fail", contribution: number) => ({
    id,
    label: id,
    outcome,
    contribution,
    detail: `${id} detail`,
  });
  const agent = {
    owner: "ana",
    parent: null,
    trust: {
      signals: [
        signal("owner", "pass", 20),
        signal("denials", "fail", -25),
        signal("key_age", "warn", -5),
        signal("hours", "warn", -10),
        signal("volume", "fail", -15),
      ],
    },
  } as unknown as Parameters<typeof signalsThatMatter>[0];

  it("names the owner, and the parent when the agent is a sub-agent", () => {
    expect(chainLine({ owner: "ana", parent: null })).toBe("owned by ana");
    expect(chainLine({ owner: "ana", parent: "research-agent" })).toBe(
      "owned by ana, through its parent research-agent",
    );
    expect(chainLine({ owner: null, parent: null })).toBe("no owner on record");
    expect(chainLine(undefined)).toBeNull();
  });

  it("shows the signals that did not pass, the costliest first, at most three", () => {
    expect(signalsThatMatter(agent).map((s) => s.id)).toEqual(["denials", "volume", "hours"]);
    expect(signalsThatMatter(undefined)).toEqual([]);
  });

  it("counts down the time the request stays open, and stops when it is up or decided", () => {
    const at = new Date("2026-12-04T10:59:19Z");
    expect(timeLeft(base, at)).toBe("the agent's call timed out; it can retry until the request closes in 41 s");
    expect(timeLeft(base, new Date("2026-12-04T10:30:00Z"))).toBe(
      "the agent's call timed out; it can retry until the request closes in 30 min",
    );
    // While the call is held, the hold is the clock that matters.
    expect(timeLeft(base, new Date("2026-12-04T10:00:19Z"))).toBe("the agent waits: 41 s left");
    // A CIBA request has no held call: the agent polls.
    expect(timeLeft({ ...base, held_until: null }, new Date("2026-12-04T10:00:19Z"))).toBe(
      "the agent polls for the answer · closes in 60 min",
    );
    expect(timeLeft(base, new Date("2026-12-04T11:00:00Z"))).toBeNull();
    expect(timeLeft({ ...base, status: "approved" }, at)).toBeNull();
  });
});
