import { describe, expect, it } from "vitest";
import type { Approval } from "../backend";
import { WINDOWS, askLine, decisionLine } from "./logic";

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
