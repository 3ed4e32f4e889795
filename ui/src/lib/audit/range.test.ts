import { describe, expect, it } from "vitest";
import { emptyHint, localDayStart, rangeFor } from "./range";

const now = new Date("2026-11-23T12:00:00Z");

describe("rangeFor", () => {
  it("measures presets back from now and leaves the end open", () => {
    expect(rangeFor("all", now)).toEqual({ since: null, until: null, problem: null });
    expect(rangeFor("1h", now).since).toBe("2026-11-23T11:00:00.000Z");
    expect(rangeFor("24h", now).since).toBe("2026-11-22T12:00:00.000Z");
    expect(rangeFor("7d", now).since).toBe("2026-11-16T12:00:00.000Z");
    expect(rangeFor("30d", now)).toEqual({ since: "2026-10-24T12:00:00.000Z", until: null, problem: null });
  });

  it("reads custom dates as whole local days, the end day included", () => {
    const r = rangeFor("custom", now, "2026-11-01", "2026-11-03");
    expect(r.problem).toBeNull();
    expect(r.since).toBe(new Date(2026, 10, 1).toISOString());
    expect(r.until).toBe(new Date(2026, 10, 4).toISOString());
    // One day: from its start to the next day's.
    const one = rangeFor("custom", now, "2026-11-30", "2026-11-30");
    expect(one.until).toBe(new Date(2026, 11, 1).toISOString());
    expect(rangeFor("custom", now, "2026-11-01", "")).toEqual({ since: new Date(2026, 10, 1).toISOString(), until: null, problem: null });
    expect(rangeFor("custom", now, "", "")).toEqual({ since: null, until: null, problem: null });
  });

  it("refuses dates that are not days and ranges that end before they start", () => {
    expect(rangeFor("custom", now, "2026-02-30", "").problem).toContain('"2026-02-30" is not a date');
    expect(rangeFor("custom", now, "", "soon").problem).toContain('"soon"');
    expect(rangeFor("custom", now, "2026-11-05", "2026-11-04").problem).toBe("The range ends before it starts: swap the dates.");
    expect(localDayStart("2026-11-05")?.getDate()).toBe(5);
    expect(localDayStart("5 Nov")).toBeNull();
  });
});

describe("emptyHint", () => {
  it("names only the filters in force", () => {
    expect(emptyHint({ since: "2026-11-23T11:00:00Z", member: "ana" })).toBe(
      "No events match: widen the time range or clear the member filter.",
    );
    expect(emptyHint({ member: "ana" })).toBe("No events match: clear the member filter.");
    expect(emptyHint({ agent: "bot", action: "token.", decision: "deny", until: "2026-11-01" })).toBe(
      "No events match: widen the time range, choose every agent, choose every action or show allowed and denied.",
    );
    expect(emptyHint({})).toBe("No events match.");
  });
});
