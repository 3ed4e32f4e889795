// Pure helpers for the agents screens: formatting, filtering, sorting, countdowns
// (unit-tested in format.test.ts).
import type { Agent, OutstandingToken } from "../backend";

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

/** How old something is: "12 min", "3 h", "40 days". */
export function age(iso: string, now: Date): string {
  const s = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  if (Number.isNaN(s)) return "unknown";
  if (s < 3600) return `${Math.max(1, Math.floor(s / 60))} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  const d = Math.floor(s / 86400);
  return d === 1 ? "1 day" : `${d} days`;
}

/** Time left until `expiresAt`: "14:05" under an hour, "2 h 05 min" beyond, "expired" after. */
export function countdown(expiresAt: string, now: Date): string {
  const ms = new Date(expiresAt).getTime() - now.getTime();
  if (Number.isNaN(ms)) return "unknown";
  if (ms <= 0) return "expired";
  const s = Math.ceil(ms / 1000);
  if (s < 3600) {
    const m = Math.floor(s / 60);
    return `${m}:${String(s % 60).padStart(2, "0")}`;
  }
  const h = Math.floor(s / 3600);
  return `${h} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** The countdown's urgency: under a minute is "bad", under five "warn". */
export function countdownTone(expiresAt: string, now: Date): Tone {
  const ms = new Date(expiresAt).getTime() - now.getTime();
  if (ms <= 60_000) return "bad";
  if (ms <= 300_000) return "warn";
  return "good";
}

/** The agent's current token: the one that expires last (null when none is outstanding). */
export function currentToken(agent: string, tokens: OutstandingToken[]): OutstandingToken | null {
  let best: OutstandingToken | null = null;
  for (const t of tokens) {
    if (t.agent !== agent) continue;
    if (!best || t.expires_at > best.expires_at) best = t;
  }
  return best;
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

export type Filters = {
  query: string;
  status: Agent["status"] | "all";
  trust: Agent["trust"]["state"] | "all";
};

export function filterAgents(agents: Agent[], f: Filters): Agent[] {
  return agents.filter(
    (a) =>
      matchesQuery(a, f.query) &&
      (f.status === "all" || a.status === f.status) &&
      (f.trust === "all" || a.trust.state === f.trust),
  );
}

export type SortKey = "name" | "owner" | "status" | "trust" | "token" | "activity";
export type Sort = { key: SortKey; dir: "asc" | "desc" };

const STATUS_ORDER = { active: 0, suspended: 1, revoked: 2 } as const;
const TRUST_ORDER = { TRUSTED: 0, PENDING: 1, UNTRUSTED: 2 } as const;

/** A stable sort by one column; ties fall back to the name. Agents without a value sort last. */
export function sortAgents(agents: Agent[], sort: Sort, tokens: OutstandingToken[] = []): Agent[] {
  const expiry = new Map<string, string>();
  for (const t of tokens) {
    const cur = expiry.get(t.agent);
    if (!cur || t.expires_at > cur) expiry.set(t.agent, t.expires_at);
  }
  const value = (a: Agent): string | number | null => {
    switch (sort.key) {
      case "name":
        return a.name;
      case "owner":
        return a.owner;
      case "status":
        return STATUS_ORDER[a.status];
      case "trust":
        return TRUST_ORDER[a.trust.state];
      case "token":
        return expiry.get(a.name) ?? null;
      case "activity":
        return a.last_activity;
    }
  };
  const sign = sort.dir === "asc" ? 1 : -1;
  return [...agents].sort((x, y) => {
    const a = value(x);
    const b = value(y);
    if (a === null && b !== null) return 1;
    if (b === null && a !== null) return -1;
    if (a !== null && b !== null && a !== b) return (a < b ? -1 : 1) * sign;
    return x.name < y.name ? -1 : x.name > y.name ? 1 : 0;
  });
}

/** Clicking a column sorts by it; clicking it again reverses. */
export function toggleSort(current: Sort, key: SortKey): Sort {
  if (current.key === key) return { key, dir: current.dir === "asc" ? "desc" : "asc" };
  // Newest activity and the soonest expiry are the interesting ends.
  return { key, dir: key === "activity" ? "desc" : "asc" };
}

/** Split "a, b  c" into scopes, dropping blanks and duplicates. */
export function parseScopeList(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean))];
}

/** What revoking stops, in sentences for the confirmation dialog. */
export function revokeConsequences(agent: Agent, tokens: OutstandingToken[]): string[] {
  const out: string[] = [];
  const mine = tokens.filter((t) => t.agent === agent.name);
  if (mine.length > 0) {
    const last = mine.reduce((a, b) => (a.expires_at > b.expires_at ? a : b));
    out.push(
      `Its ${mine.length === 1 ? "token stops" : `${mine.length} tokens stop`} working at once for every service that checks with Mandate; a service that only checks signatures accepts ${mine.length === 1 ? "it" : "them"} until ${new Date(last.expires_at).toLocaleTimeString()} at the latest.`,
    );
  } else {
    out.push("It can no longer get tokens from the endpoint.");
  }
  const inKeychain = agent.keys.filter((k) => k.origin === "keychain").length;
  if (inKeychain > 0) {
    out.push(
      `${inKeychain === 1 ? "Its private key is" : `Its ${inKeychain} private keys are`} deleted from this machine's keychain.`,
    );
  }
  const others = agent.keys.length - inKeychain;
  if (others > 0) {
    out.push(
      `${others === 1 ? "Its key held elsewhere is" : `Its ${others} keys held elsewhere are`} refused from now on.`,
    );
  }
  if (agent.scopes.length > 0) {
    out.push(`Its scopes (${agent.scopes.join(", ")}) can no longer be used.`);
  }
  out.push("Revoking is final: to run the agent again, register it anew.");
  return out;
}

/** A key's state on the agent page. A revoked agent's keys are never "active": a key this
 * machine generated was deleted from the keychain at revocation, any other is refused. */
export function keyState(
  k: Pick<Agent["keys"][number], "origin" | "expires_at">,
  status: Agent["status"],
  now: Date,
): { label: string; tone: Tone; title: string } {
  if (status === "revoked") {
    return k.origin === "keychain"
      ? { label: "destroyed", tone: "bad", title: "Deleted from this machine's keychain when the agent was revoked." }
      : { label: "refused", tone: "bad", title: "The agent is revoked: assertions signed with this key are refused." };
  }
  if (k.expires_at !== null && new Date(k.expires_at) <= now) {
    return { label: "retired", tone: "muted", title: "Past its rotation overlap: refused." };
  }
  if (k.expires_at !== null) {
    return { label: `retiring in ${countdown(k.expires_at, now)}`, tone: "warn", title: "Accepted until the rotation overlap ends." };
  }
  return { label: "active", tone: "good", title: "The agent signs its assertions with this key." };
}

/** The one banner about the agent's state, with who changed it, when and why: a revocation
 * (red), a suspension (amber), or a parent agent holding a sub-agent back (amber). Null when
 * the agent is active and unhindered. */
export function statusBanner(
  agent: Pick<Agent, "status" | "status_reason" | "held_by_parent">,
  change: { action: string; by: { kind: string; name: string }; time: string; reason: string | null } | null,
  describeActor: (a: { kind: string; id: string; name: string }) => string,
  formatTime: (iso: string) => string,
): { tone: "bad" | "warn"; title: string; text: string } | null {
  const reason = change?.reason ?? agent.status_reason;
  const why = reason ? ` “${reason}”` : "";
  const byWhom = change ? ` by ${describeActor({ id: "", ...change.by })} on ${formatTime(change.time)}` : "";
  if (agent.status === "revoked") {
    return {
      tone: "bad",
      title: `Revoked${byWhom}.`,
      text: `${why ? `Reason:${why}. ` : ""}It gets no tokens, its outstanding tokens are refused and its keys no longer work. Revocation is final: register a new agent to replace it.`,
    };
  }
  if (agent.status === "suspended") {
    return {
      tone: "warn",
      title: `Suspended${byWhom}.`,
      text: `${why ? `Reason:${why}. ` : ""}It gets no tokens and its tokens are refused until it is resumed.`,
    };
  }
  if (agent.held_by_parent) {
    return {
      tone: "warn",
      title: `Held back by its parent agent ${agent.held_by_parent.parent}.`,
      text: `${agent.held_by_parent.message.charAt(0).toUpperCase()}${agent.held_by_parent.message.slice(1)}.`,
    };
  }
  return null;
}
