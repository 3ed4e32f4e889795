// The agents table is virtualised with the audit timeline's `windowFor`: only the rows in view
// (and a few either side) exist in the page. These are the table-specific pure parts: the
// spacer rows that stand in for the rest, and keyboard movement between rows that may not be
// rendered yet.
import type { Window } from "../audit/window";

/** Heights of the empty rows above and below the rendered ones, in px. */
export function spacers(win: Window, rowHeight: number): { above: number; below: number } {
  const above = Math.max(0, win.top);
  const below = Math.max(0, win.height - above - (win.end - win.first) * rowHeight);
  return { above, below };
}

/**
 * The row a key moves to from row `current` (-1: none yet) in a list of `total` rows, or null
 * when the key is not a movement. Unlike the sidebar it does not wrap: the end of a long list
 * is not next to its start.
 */
export function rowMove(current: number, key: string, total: number, pageRows: number): number | null {
  if (total <= 0) return null;
  const clamp = (i: number) => Math.max(0, Math.min(total - 1, i));
  const page = Math.max(1, pageRows);
  switch (key) {
    case "ArrowDown":
      return clamp(current + 1);
    case "ArrowUp":
      return clamp(current < 0 ? 0 : current - 1);
    case "PageDown":
      return clamp(current + page);
    case "PageUp":
      return clamp(current - page);
    case "Home":
      return 0;
    case "End":
      return total - 1;
    default:
      return null;
  }
}

/**
 * The scroll position that shows row `index` whole below a sticky header of `header` px,
 * moving as little as possible (unchanged when it is already in view).
 */
export function scrollToShow(index: number, scrollTop: number, viewport: number, rowHeight: number, header: number): number {
  const top = index * rowHeight; // the row's top, measured from the first row
  const visibleRows = Math.max(rowHeight, viewport - header);
  if (top < scrollTop) return top;
  if (top + rowHeight > scrollTop + visibleRows) return top + rowHeight - visibleRows;
  return scrollTop;
}
