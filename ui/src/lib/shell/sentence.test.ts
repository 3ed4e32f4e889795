import { describe, expect, it } from "vitest";
import { sentence } from "./sentence";

describe("sentence", () => {
  it("capitalises and ends with a full stop", () => {
    expect(sentence("no OS keychain is reachable (bus error)")).toBe(
      "No OS keychain is reachable (bus error).",
    );
  });
  it("keeps text that already ends a sentence", () => {
    expect(sentence("Agent not found.")).toBe("Agent not found.");
    expect(sentence("Is the keychain locked?")).toBe("Is the keychain locked?");
  });
  it("trims and leaves empty text empty", () => {
    expect(sentence("  done  ")).toBe("Done.");
    expect(sentence("")).toBe("");
  });
});
