import { describe, expect, it } from "vitest";
import { endpointLine, endpointTone, lifetime } from "./format";

describe("settings wording", () => {
  it("describes the endpoint", () => {
    expect(endpointLine({ state: "running", port: 6263, url: "http://127.0.0.1:6263", message: null })).toBe(
      "Agents get tokens at http://127.0.0.1:6263.",
    );
    expect(endpointLine({ state: "paused", port: 6263, url: null, message: null })).toMatch(/^Paused/);
    expect(endpointTone("running")).toBe("good");
    expect(endpointTone("failed")).toBe("bad");
  });

  it("writes lifetimes in human units", () => {
    expect(lifetime(900)).toBe("15 min");
    expect(lifetime(86400)).toBe("24 h");
    expect(lifetime(5400)).toBe("1 h 30 min");
  });
});
