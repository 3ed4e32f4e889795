// Messages from the backend are shown as sentences: capitalised, ending with a full stop.

/** "no keychain is reachable" → "No keychain is reachable."; text that ends a sentence stays. */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const capitalised = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}
