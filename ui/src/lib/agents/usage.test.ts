import { describe, expect, it } from "vitest";
import { usageLine, usageTone } from "./usage";

describe("budget usage", () => {
  it("says where the agent stands", () => {
    expect(usageLine({ used: 3, daily_budget: null, state: "unlimited", rate_per_minute: null })).toBe("3 units, no budget");
    expect(usageLine({ used: 3, daily_budget: 10, state: "ok", rate_per_minute: 60 })).toBe("3 of 10 units · 60/min");
    expect(usageLine({ used: 9, daily_budget: 10, state: "essential_only", rate_per_minute: null })).toBe("9 of 10: essential actions only");
    expect(usageLine({ used: 10, daily_budget: 10, state: "exhausted", rate_per_minute: null })).toMatch(/exhausted until midnight UTC/);
  });
  it("colours it", () => {
    expect(usageTone("exhausted")).toBe("bad");
    expect(usageTone("essential_only")).toBe("warn");
    expect(usageTone("ok")).toBe("good");
    expect(usageTone("unlimited")).toBe("muted");
  });
});
