import { describe, expect, it } from "vitest";
import type { EndpointStatus } from "../backend";
import { endpointLine, endpointShort, endpointTone, lifetime, servedBy, thresholdProblem, thresholdsSaved } from "./format";

const running = (over: Partial<EndpointStatus> = {}): EndpointStatus => ({
  state: "running",
  port: 6263,
  url: "http://127.0.0.1:6263",
  message: null,
  served_by: "app",
  pid: null,
  tls: false,
  ...over,
});

describe("settings wording", () => {
  it("describes the endpoint", () => {
    expect(endpointLine(running())).toBe("Agents get tokens at http://127.0.0.1:6263.");
    expect(endpointLine(running({ state: "paused", url: null }))).toMatch(/^Paused/);
    expect(endpointTone("running")).toBe("good");
    expect(endpointTone("failed")).toBe("bad");
  });

  it("says who serves it when it is not this app", () => {
    expect(servedBy(running())).toBeNull();
    expect(servedBy(running({ served_by: "service", pid: 4242 }))).toBe(
      "Served by the background service (process 4242): it keeps running while Mandate is closed.",
    );
    expect(servedBy(running({ served_by: "process", pid: 7 }))).toContain("`mandate serve` (process 7)");
    expect(endpointShort(running({ served_by: "service" }))).toBe("Endpoint on :6263");
    expect(endpointShort(running())).toBe("Endpoint on :6263");
    expect(endpointShort(running({ state: "paused" }))).toBe("Endpoint paused");
  });

  it("writes lifetimes in human units", () => {
    expect(lifetime(900)).toBe("15 min");
    expect(lifetime(86400)).toBe("24 h");
    expect(lifetime(5400)).toBe("1 h 30 min");
  });
});

describe("trust thresholds", () => {
  it("accepts PENDING below TRUSTED and a floor within 0-100", () => {
    expect(thresholdProblem({ trusted: 70, pending: 40, floor: 0 })).toBeNull();
    expect(thresholdProblem({ trusted: 100, pending: 99, floor: 100 })).toBeNull();
  });

  it("refuses thresholds that would make no sense, saying which", () => {
    expect(thresholdProblem({ trusted: 40, pending: 40, floor: 0 })).toMatch(/TRUSTED must start above PENDING \(40\)/);
    expect(thresholdProblem({ trusted: 70, pending: 0, floor: 0 })).toMatch(/PENDING must start between 1 and 99/);
    expect(thresholdProblem({ trusted: 70, pending: 40, floor: 101 })).toMatch(/organisation floor/);
    expect(thresholdProblem({ trusted: 70.5, pending: 40, floor: 0 })).toMatch(/whole numbers/);
  });

  it("names the member who saved them", () => {
    expect(thresholdsSaved({ trusted: 80, pending: 50, floor: 30 }, "founder")).toBe(
      "Saved by founder: TRUSTED from 80, PENDING from 50; every request now needs a score of at least 30.",
    );
    expect(thresholdsSaved({ trusted: 70, pending: 40, floor: 0 }, null)).toMatch(/^Saved: .*no organisation floor/);
  });
});
