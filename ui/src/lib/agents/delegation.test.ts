import { describe, expect, it } from "vitest";
import { checkDelegation, localInput } from "./delegation";

const now = new Date("2026-11-23T09:00:00Z");
const ok = { member: "founder", scopes: ["github:repo.read"], until: localInput(new Date(now.getTime() + 3_600_000)), task: "Q4 report" };

describe("delegation form", () => {
  it("accepts a complete form and gives an RFC 3339 end", () => {
    const r = checkDelegation(ok, now);
    expect(r).toEqual({ until: new Date(now.getTime() + 3_600_000).toISOString() });
  });
  it("explains each missing or wrong field", () => {
    expect(checkDelegation({ ...ok, member: "" }, now)).toEqual({ problem: expect.stringMatching(/team member/) });
    expect(checkDelegation({ ...ok, scopes: [] }, now)).toEqual({ problem: expect.stringMatching(/at least one scope/) });
    expect(checkDelegation({ ...ok, task: " " }, now)).toEqual({ problem: expect.stringMatching(/what the task is/) });
    expect(checkDelegation({ ...ok, until: "" }, now)).toEqual({ problem: expect.stringMatching(/when the delegation ends/) });
    expect(checkDelegation({ ...ok, until: localInput(new Date(now.getTime() - 60_000)) }, now)).toEqual({ problem: expect.stringMatching(/in the future/) });
    expect(checkDelegation({ ...ok, until: localInput(new Date(now.getTime() + 91 * 86_400_000)) }, now)).toEqual({ problem: expect.stringMatching(/at most 90 days/) });
  });
  it("formats datetime-local values", () => {
    expect(localInput(new Date(2026, 0, 5, 7, 3))).toBe("2026-01-05T07:03");
  });
});
