import { describe, expect, it } from "vitest";
import { PRESETS, actionLines, actionSummary } from "./presets";

describe("connection presets", () => {
  it("offers the common APIs, read-only", () => {
    expect(PRESETS.map((p) => p.label)).toEqual(["GitHub", "Slack", "Stripe", "OpenAI", "Anthropic", "Generic HTTP"]);
    for (const p of PRESETS) {
      for (const a of p.actions) {
        expect(a).toMatch(/^[a-z][a-z0-9._-]*=(GET|HEAD):\//);
      }
    }
  });

  it("reads the actions box line by line", () => {
    expect(actionLines(" repo.read=GET:/repos/**\n\n  user.read=GET:/user \n")).toEqual([
      "repo.read=GET:/repos/**",
      "user.read=GET:/user",
    ]);
  });

  it("summarises an action", () => {
    expect(actionSummary({ method: "GET", path_pattern: "/repos/**" })).toBe("GET /repos/**");
    expect(actionSummary({ method: "*", path_pattern: "/x" })).toBe("any method /x");
  });
});
