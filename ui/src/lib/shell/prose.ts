// Messages from the core mark commands and names as Markdown code spans (`mandate serve`).
// They are shown as code, in the monospace face, never with the backticks themselves.

/** A run of text: plain, or a code span. */
export interface Span {
  code: boolean;
  text: string;
}

/**
 * Split `text` into plain runs and `code` spans. Backticks pair up left to right; a lone
 * backtick at the end (an unpaired one) is kept as it is, so no character is ever lost.
 */
export function codeSpans(text: string): Span[] {
  const out: Span[] = [];
  let rest = text;
  while (rest.length > 0) {
    const open = rest.indexOf("`");
    const close = open < 0 ? -1 : rest.indexOf("`", open + 1);
    if (open < 0 || close < 0) {
      out.push({ code: false, text: rest });
      break;
    }
    if (open > 0) out.push({ code: false, text: rest.slice(0, open) });
    if (close > open + 1) out.push({ code: true, text: rest.slice(open + 1, close) });
    rest = rest.slice(close + 1);
  }
  // Neighbouring plain runs (around an empty ``) read as one.
  return out.reduce<Span[]>((acc, s) => {
    const last = acc[acc.length - 1];
    if (last && !last.code && !s.code) last.text += s.text;
    else acc.push({ ...s });
    return acc;
  }, []);
}

/** The text as a person reads it: the code spans' backticks removed. */
export function plainText(text: string): string {
  return codeSpans(text)
    .map((s) => s.text)
    .join("");
}
