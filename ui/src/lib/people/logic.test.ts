import { describe, expect, it } from "vitest";
import type { PersonStatus } from "../backend";
import { handleFrom, memberLine, personLine } from "./logic";

describe("a person's name as a member name", () => {
  it("lowercases, turns spaces and punctuation into dashes and drops accents", () => {
    expect(handleFrom("Ann Smith")).toBe("ann-smith");
    expect(handleFrom("  José  Núñez ")).toBe("jose-nunez");
    expect(handleFrom("o'brien")).toBe("o-brien");
    expect(handleFrom("ann")).toBe("ann");
    expect(handleFrom("42 Ann!")).toBe("ann");
    expect(handleFrom("!!!")).toBe("");
  });
});

describe("who changes name", () => {
  const base: PersonStatus = { os_user: "ann", member: null, members: [], organisation: null };
  it("says nobody is chosen, and that nothing changes until someone is", () => {
    expect(personLine(base)).toMatch(/^Nobody is chosen yet for the OS user ann: Mandate makes no change/);
  });
  it("names the member and their email", () => {
    const member = { id: "m1", name: "ann", email: "ann@example.com", created_at: "2026-11-23T09:00:00Z" };
    expect(memberLine(member)).toBe("ann (ann@example.com)");
    expect(personLine({ ...base, member })).toBe(
      "Changes made in this window are recorded as ann (ann@example.com) for the OS user ann. The CLI of this login uses the same choice.",
    );
  });
});
