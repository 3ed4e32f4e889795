import { describe, expect, it } from "vitest";
import { initialMode, roleLabel } from "./workspace.svelte";

const alice = { url: "https://team.example:8443", host: "team.example:8443", member: "alice", role: "admin", fingerprint: null };

describe("the workspace a window opens in", () => {
  it("is this computer's when no team was joined, whatever was remembered", () => {
    expect(initialMode(null, "team")).toBe("local");
  });
  it("is the team's once joined, unless the person chose this computer", () => {
    expect(initialMode(alice, null)).toBe("team");
    expect(initialMode(alice, "team")).toBe("team");
    expect(initialMode(alice, "local")).toBe("local");
  });
  it("names an auditor's role as read only", () => {
    expect(roleLabel("auditor")).toContain("read only");
    expect(roleLabel("admin")).toBe("Admin");
  });
});
