// Virtual scrolling for lists far taller than a browser will lay out.
//
// Only the rows in view (plus a few either side) are rendered. A million rows of 40 px would
// need a 40,000,000 px tall element, past what WebKit lays out (about 2^25 px), so beyond
// `maxHeight` the scroll range is compressed: the scroll position maps to a fraction of the
// list, and the rendered rows are placed around the viewport so they still move one pixel per
// pixel scrolled within a screenful.

export type WindowInput = {
  scrollTop: number;
  viewport: number;
  total: number;
  rowHeight: number;
  /** Tallest spacer to lay out; beyond it scrolling is compressed. */
  maxHeight?: number;
  /** Rows rendered above and below the viewport. */
  overscan?: number;
};

export type Window = {
  /** Index of the first rendered row. */
  first: number;
  /** Index one past the last rendered row. */
  end: number;
  /** Where the first rendered row's top goes, in px from the top of the spacer. */
  top: number;
  /** Height of the spacer that gives the scrollbar its range. */
  height: number;
};

export const MAX_HEIGHT = 8_000_000;

export function windowFor(input: WindowInput): Window {
  const { viewport, total, rowHeight } = input;
  const maxHeight = input.maxHeight ?? MAX_HEIGHT;
  const overscan = input.overscan ?? 6;
  if (total <= 0 || rowHeight <= 0) return { first: 0, end: 0, top: 0, height: 0 };
  const natural = total * rowHeight;
  const height = Math.min(natural, maxHeight);
  const scrollTop = Math.max(0, Math.min(input.scrollTop, Math.max(0, height - viewport)));
  let exact: number;
  let top: number;
  if (natural <= maxHeight) {
    exact = scrollTop / rowHeight;
    top = Math.floor(exact) * rowHeight;
  } else {
    const range = Math.max(1, height - viewport);
    const rowsBelowFirstScreen = Math.max(0, total - viewport / rowHeight);
    exact = (scrollTop / range) * rowsBelowFirstScreen;
    top = scrollTop - (exact - Math.floor(exact)) * rowHeight;
  }
  let first = Math.floor(exact);
  const visible = Math.ceil(viewport / rowHeight) + 1;
  const before = Math.min(overscan, first);
  first -= before;
  top -= before * rowHeight;
  const end = Math.min(total, first + before + visible + overscan);
  return { first, end, top, height };
}

/** The scroll position that brings row `index` to the top of the viewport. */
export function scrollTopFor(index: number, input: Omit<WindowInput, "scrollTop">): number {
  const maxHeight = input.maxHeight ?? MAX_HEIGHT;
  const natural = input.total * input.rowHeight;
  if (natural <= maxHeight) return index * input.rowHeight;
  const height = maxHeight;
  const range = Math.max(1, height - input.viewport);
  const rowsBelowFirstScreen = Math.max(1, input.total - input.viewport / input.rowHeight);
  return (index / rowsBelowFirstScreen) * range;
}
