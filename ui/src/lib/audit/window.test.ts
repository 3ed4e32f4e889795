import { describe, expect, it } from "vitest";
import { scrollTopFor, windowFor } from "./window";

describe("windowFor", () => {
  it("renders only the rows in view plus overscan", () => {
    const w = windowFor({ scrollTop: 4000, viewport: 400, total: 1000, rowHeight: 40, overscan: 5 });
    expect(w.height).toBe(40_000);
    expect(w.first).toBe(95);
    expect(w.top).toBe(95 * 40);
    expect(w.end - w.first).toBeLessThanOrEqual(5 + 11 + 5);
    expect(w.end).toBeGreaterThanOrEqual(100 + 10);
  });

  it("starts at the top and stops at the end", () => {
    expect(windowFor({ scrollTop: 0, viewport: 400, total: 1000, rowHeight: 40 }).first).toBe(0);
    const last = windowFor({ scrollTop: 1e9, viewport: 400, total: 1000, rowHeight: 40 });
    expect(last.end).toBe(1000);
    expect(windowFor({ scrollTop: 0, viewport: 400, total: 0, rowHeight: 40 }).end).toBe(0);
  });

  it("compresses a million rows into a height WebKit can lay out", () => {
    const base = { viewport: 600, total: 1_000_000, rowHeight: 40, maxHeight: 8_000_000 };
    const top = windowFor({ ...base, scrollTop: 0 });
    expect(top.height).toBe(8_000_000);
    expect(top.first).toBe(0);
    const bottom = windowFor({ ...base, scrollTop: 8_000_000 });
    expect(bottom.end).toBe(1_000_000);
    // The last row is in view at the very bottom.
    const lastRowTop = bottom.top + (999_999 - bottom.first) * 40;
    expect(lastRowTop + 40).toBeLessThanOrEqual(8_000_000 - 600 + 600 + 1);
    const mid = windowFor({ ...base, scrollTop: 4_000_000 });
    expect(mid.first).toBeGreaterThan(490_000);
    expect(mid.first).toBeLessThan(510_000);
    expect(mid.end - mid.first).toBeLessThan(40);
  });

  it("moves rows one pixel per pixel within a screenful when compressed", () => {
    const base = { viewport: 600, total: 1_000_000, rowHeight: 40, maxHeight: 8_000_000, overscan: 0 };
    const a = windowFor({ ...base, scrollTop: 1000 });
    const b = windowFor({ ...base, scrollTop: 1001 });
    // Row `a.first` is shown at the same place on screen (relative to the scroll position),
    // moved by less than one row.
    const screenA = a.top - 1000;
    const screenB = b.top + (a.first - b.first) * 40 - 1001;
    expect(Math.abs(screenA - screenB)).toBeLessThan(40);
  });

  it("finds the scroll position of a row", () => {
    const base = { viewport: 600, total: 1000, rowHeight: 40 };
    expect(scrollTopFor(10, base)).toBe(400);
    const big = { viewport: 600, total: 1_000_000, rowHeight: 40, maxHeight: 8_000_000 };
    const w = windowFor({ ...big, scrollTop: scrollTopFor(500_000, big), overscan: 0 });
    expect(Math.abs(w.first - 500_000)).toBeLessThanOrEqual(1);
  });
});
