// The Audit screen's time range and member filter, as pure functions: presets measured back
// from now, custom dates read as whole local days, and what an empty result should suggest.
import type { AuditQuery } from "../backend";

export type RangePreset = "all" | "1h" | "24h" | "7d" | "30d" | "custom";

export const RANGE_CHOICES: { value: RangePreset; label: string }[] = [
  { value: "all", label: "All time" },
  { value: "1h", label: "Last hour" },
  { value: "24h", label: "Last 24 hours" },
  { value: "7d", label: "Last 7 days" },
  { value: "30d", label: "Last 30 days" },
  { value: "custom", label: "Custom dates…" },
];

const HOUR = 3_600_000;
const BACK: Record<string, number> = { "1h": HOUR, "24h": 24 * HOUR, "7d": 7 * 24 * HOUR, "30d": 30 * 24 * HOUR };

export type Range = { since: string | null; until: string | null; problem: string | null };

/** Local midnight at the start of `date` (`YYYY-MM-DD`), or null when it is not a date. */
export function localDayStart(date: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date.trim());
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]) - 1, Number(m[3])];
  const t = new Date(y, mo, d);
  // new Date(2026, 1, 31) rolls over to March: refuse what is not a real day.
  if (t.getFullYear() !== y || t.getMonth() !== mo || t.getDate() !== d) return null;
  return t;
}

/**
 * The `since`/`until` (RFC 3339, until exclusive) for a preset at `now`; for custom dates,
 * from the start of `from` to the end of `to` (local days, either may be empty).
 */
export function rangeFor(preset: RangePreset, now: Date, from = "", to = ""): Range {
  if (preset === "all") return { since: null, until: null, problem: null };
  if (preset !== "custom") return { since: new Date(now.getTime() - BACK[preset]).toISOString(), until: null, problem: null };
  const start = from.trim() ? localDayStart(from) : null;
  const endDay = to.trim() ? localDayStart(to) : null;
  if (from.trim() && !start) return { since: null, until: null, problem: `"${from}" is not a date: write it as 2026-11-01.` };
  if (to.trim() && !endDay) return { since: null, until: null, problem: `"${to}" is not a date: write it as 2026-11-01.` };
  const end = endDay ? new Date(endDay.getFullYear(), endDay.getMonth(), endDay.getDate() + 1) : null;
  if (start && end && start >= end) return { since: null, until: null, problem: "The range ends before it starts: swap the dates." };
  return { since: start?.toISOString() ?? null, until: end?.toISOString() ?? null, problem: null };
}

/** What to change when a filtered timeline is empty, naming only the filters in force. */
export function emptyHint(q: AuditQuery): string {
  const changes: string[] = [];
  if (q.since || q.until) changes.push("widen the time range");
  if (q.member) changes.push("clear the member filter");
  if (q.agent) changes.push("choose every agent");
  if (q.action) changes.push("choose every action");
  if (q.decision) changes.push("show allowed and denied");
  if (changes.length === 0) return "No events match.";
  const last = changes.pop();
  return `No events match: ${changes.length ? `${changes.join(", ")} or ${last}` : last}.`;
}
