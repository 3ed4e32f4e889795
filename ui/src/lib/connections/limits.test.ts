import { describe, expect, it } from "vitest";
import { authText, limitsSummary, parseLimit } from "./limits";

const base = { connection: "github", auth: { kind: "bearer" as const }, preset: "github", rate_per_minute: null, daily_budget: null, essential: ["repo.read"], costs: [] };

describe("connection limits", () => {
  it("summarises limits in words", () => {
    expect(limitsSummary(base)).toEqual(["no rate limit", "no daily budget"]);
    expect(limitsSummary({ ...base, rate_per_minute: 60, daily_budget: 1000 })).toEqual([
      "60 calls/min per agent",
      "1000 units/day per agent",
      "essential past 90 %: repo.read",
    ]);
    expect(limitsSummary(undefined)).toEqual([]);
  });
  it("parses the form: empty is no limit, else a whole number ≥ 1", () => {
    expect(parseLimit(" ", "x")).toEqual({ value: null });
    expect(parseLimit("120", "x")).toEqual({ value: 120 });
    for (const bad of ["0", "-1", "1.5", "ten", "99999999999"]) {
      expect(parseLimit(bad, "daily budget")).toEqual({ error: expect.stringMatching(/daily budget must be a whole number/) });
    }
  });
  it("says where the credential goes", () => {
    expect(authText({ kind: "bearer" })).toBe("Authorization: Bearer");
    expect(authText({ kind: "header", name: "x-api-key" })).toBe("x-api-key header");
  });
});
