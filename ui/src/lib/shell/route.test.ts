import { describe, expect, it } from "vitest";
import { nextIndex, parseRoute, routeHash } from "./route";

describe("routes", () => {
  it("parses screens and agent detail", () => {
    expect(parseRoute("")).toEqual({ screen: "agents", agent: null });
    expect(parseRoute("#audit")).toEqual({ screen: "audit", agent: null });
    expect(parseRoute("#mcp")).toEqual({ screen: "mcp", agent: null });
    expect(parseRoute("#agents/billing-report-agent")).toEqual({
      screen: "agents",
      agent: "billing-report-agent",
    });
    expect(parseRoute("#nonsense")).toEqual({ screen: "agents", agent: null });
    expect(parseRoute("#settings/x")).toEqual({ screen: "settings", agent: null });
  });

  it("round-trips", () => {
    const r = { screen: "agents" as const, agent: "a b" };
    expect(parseRoute(routeHash(r))).toEqual(r);
  });

  it("moves through the sidebar with arrow keys", () => {
    expect(nextIndex(0, "ArrowDown", 4)).toBe(1);
    expect(nextIndex(3, "ArrowDown", 4)).toBe(0);
    expect(nextIndex(0, "ArrowUp", 4)).toBe(3);
    expect(nextIndex(2, "End", 4)).toBe(3);
    expect(nextIndex(2, "Home", 4)).toBe(0);
    expect(nextIndex(2, "x", 4)).toBeNull();
  });
});
