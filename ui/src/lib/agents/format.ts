// Pure formatting helpers for the agents screen (unit-tested in format.test.ts).
import type { Agent } from "../backend";

/** "just now", "5 min ago", "3 h ago", "2 days ago". */
export function relativeTime(iso: string | null, now: Date): string {
  if (!iso) return "never";
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return "unknown";
  const s = Math.max(0, Math.round((now.getTime() - then) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const d = Math.floor(s / 86400);
  return d === 1 ? "yesterday" : `${d} days ago`;
}

export type Tone = "good" | "warn" | "bad" | "muted";

export function trustTone(state: Agent["trust"]["state"]): Tone {
  switch (state) {
    case "TRUSTED":
      return "good";
    case "PENDING":
      return "warn";
    default:
      return "bad";
  }
}

export function statusTone(status: Agent["status"]): Tone {
  switch (status) {
    case "active":
      return "good";
    case "suspended":
      return "warn";
    default:
      return "bad";
  }
}

/** Case-insensitive match on name, purpose, owner and scopes. */
export function matchesQuery(agent: Agent, query: string): boolean {
  const q = query.trim().toLowerCase();
  if (!q) return true;
  return [agent.name, agent.purpose, agent.owner ?? "", ...agent.scopes].some((f) =>
    f.toLowerCase().includes(q),
  );
}

/** The one-line reason an agent is not TRUSTED, taken from its first non-passing signal. */
export function trustReason(agent: Agent): string {
  const t = agent.trust;
  if (t.override) return `Set by hand: ${t.override.reason}`;
  const s = t.signals.find((x) => x.outcome === "fail") ?? t.signals.find((x) => x.outcome === "warn");
  return s ? s.detail : "All signals pass";
}
