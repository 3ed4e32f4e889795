import { describe, expect, it } from "vitest";
import { windowFor } from "../audit/window";
import { rowMove, scrollToShow, spacers } from "./rows";

describe("virtualised agents table", () => {
  it("renders a screenful of 1,000 rows and keeps the table its full height", () => {
    const win = windowFor({ scrollTop: 56 * 500, viewport: 600, total: 1000, rowHeight: 56 });
    expect(win.end - win.first).toBeLessThan(30);
    expect(win.first).toBeLessThanOrEqual(500);
    expect(win.end).toBeGreaterThan(500 + 600 / 56);
    const s = spacers(win, 56);
    expect(s.above).toBe(win.first * 56);
    expect(s.above + (win.end - win.first) * 56 + s.below).toBe(1000 * 56);
  });

  it("needs no spacer for a short list", () => {
    const win = windowFor({ scrollTop: 0, viewport: 600, total: 3, rowHeight: 56 });
    expect([win.first, win.end]).toEqual([0, 3]);
    expect(spacers(win, 56)).toEqual({ above: 0, below: 0 });
  });

  it("moves between rows with the keyboard without wrapping", () => {
    expect(rowMove(-1, "ArrowDown", 10, 5)).toBe(0);
    expect(rowMove(-1, "ArrowUp", 10, 5)).toBe(0);
    expect(rowMove(3, "ArrowDown", 10, 5)).toBe(4);
    expect(rowMove(9, "ArrowDown", 10, 5)).toBe(9);
    expect(rowMove(0, "ArrowUp", 10, 5)).toBe(0);
    expect(rowMove(2, "PageDown", 10, 5)).toBe(7);
    expect(rowMove(8, "PageDown", 10, 5)).toBe(9);
    expect(rowMove(3, "PageUp", 10, 5)).toBe(0);
    expect(rowMove(3, "Home", 10, 5)).toBe(0);
    expect(rowMove(3, "End", 10, 5)).toBe(9);
    expect(rowMove(3, "Enter", 10, 5)).toBeNull();
    expect(rowMove(0, "ArrowDown", 0, 5)).toBeNull();
  });

  it("scrolls only as far as needed to show a row below the header", () => {
    // Viewport 600 px with a 40 px header: 560 px of rows, 10 rows of 56 px.
    expect(scrollToShow(3, 0, 600, 56, 40)).toBe(0);
    expect(scrollToShow(10, 0, 600, 56, 40)).toBe(11 * 56 - 560);
    expect(scrollToShow(2, 500, 600, 56, 40)).toBe(112);
    expect(scrollToShow(999, 0, 600, 56, 40)).toBe(1000 * 56 - 560);
  });
});
