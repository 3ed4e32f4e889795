import { describe, expect, it } from "vitest";
import { actionLines, actionSummary, placementLabel, presetChoices } from "./presets";

const views = [
  { name: "http", base_url: "", auth: "bearer", actions: ["read=GET:/**"], sdk_variables: [], default_actions: [], examples: [] },
  { name: "github", base_url: "https://api.github.com", auth: "bearer", actions: ["repo.read=GET:/repos/**"], sdk_variables: [], default_actions: [], examples: [] },
  { name: "anthropic", base_url: "https://api.anthropic.com", auth: "header:x-api-key", actions: [], sdk_variables: [], default_actions: [], examples: [] },
  { name: "newvendor", base_url: "https://api.new.example", auth: "bearer", actions: [], sdk_variables: [], default_actions: [], examples: [] },
];

describe("connection presets", () => {
  it("labels the backend's presets and puts the generic one last, unnamed", () => {
    const p = presetChoices(views);
    expect(p.map((x) => x.label)).toEqual(["GitHub", "Anthropic", "newvendor", "Generic HTTP", "Database"]);
    expect(p[4].kind).toBe("database");
    expect(p[0]).toMatchObject({ name: "github", baseUrl: "https://api.github.com", actions: ["repo.read=GET:/repos/**"] });
    expect(p[1].auth).toBe("header:x-api-key");
    expect(p[3]).toMatchObject({ name: "", baseUrl: "https://" });
    expect(p[2].secretHint).toMatch(/credential/);
  });

  it("says where the credential goes", () => {
    expect(placementLabel("bearer")).toBe("Authorization: Bearer");
    expect(placementLabel("header:x-api-key")).toBe("x-api-key header");
    expect(placementLabel("query:key")).toBe("?key= query parameter");
    expect(placementLabel("basic")).toBe("Authorization: Basic");
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
