// Approvals inbox: wording and choices, kept apart from the component so they are tested.
import type { Agent, Approval, ApprovalWindow, TrustSignal } from "../backend";

/** The choices a person has for a waiting request, in the order the inbox offers them. */
export const WINDOWS: { window: ApprovalWindow; label: string }[] = [
  { window: "once", label: "Approve once" },
  { window: "minutes15", label: "For 15 min" },
  { window: "hour", label: "For 1 hour" },
  { window: "today", label: "Until midnight UTC" },
];

/** "billing-report-agent asks to call github:repo.read for ana". */
export function askLine(a: Approval): string {
  return `${a.agent} asks to call ${a.action}${a.on_behalf_of ? ` for ${a.on_behalf_of}` : ""}`;
}

/** What was decided, in one sentence (null while pending). */
export function decisionLine(a: Approval, now: Date = new Date()): string | null {
  switch (a.status) {
    case "pending":
      return new Date(a.expires_at) <= now ? "Nobody answered; it expired." : null;
    case "approved":
      return a.valid_until
        ? `Approved by ${a.decided_by ?? "someone"} until ${new Date(a.valid_until).toISOString().slice(11, 16)} UTC.`
        : `Approved once by ${a.decided_by ?? "someone"}.`;
    case "denied":
      return `Denied by ${a.decided_by ?? "someone"}: ${a.reason ?? ""}`.trim();
    case "expired":
      return "Nobody answered; it expired.";
  }
}

/** The accountable chain behind an agent: "owned by ana, through its parent research-agent". */
export function chainLine(agent: Pick<Agent, "owner" | "parent"> | undefined): string | null {
  if (!agent) return null;
  const owner = agent.owner ? `owned by ${agent.owner}` : "no owner on record";
  return agent.parent ? `${owner}, through its parent ${agent.parent}` : owner;
}

/** The signals a person should weigh: those that did not pass, the costliest first. */
export function signalsThatMatter(agent: Pick<Agent, "trust"> | undefined, max = 3): TrustSignal[] {
  if (!agent) return [];
  return agent.trust.signals
    .filter((s) => s.outcome !== "pass")
    .sort((a, b) => a.contribution - b.contribution)
    .slice(0, max);
}

/** Whole seconds from `now` until `at` (negative once past). */
function secondsUntil(at: string, now: Date): number {
  return Math.ceil((new Date(at).getTime() - now.getTime()) / 1000);
}

/**
 * Where the request stands, in a phrase, or null once it has closed. While the broker or the MCP
 * gateway still holds the agent's call, that wait is what counts ("the agent waits: 41 s
 * left"); after it, the agent was told to retry and the request stays open until it expires. A
 * CIBA request (no held call) is polled by the agent until it closes.
 */
export function timeLeft(a: Approval, now: Date = new Date()): string | null {
  if (a.status !== "pending") return null;
  const s = secondsUntil(a.expires_at, now);
  if (s <= 0) return null;
  const closes = s < 120 ? `closes in ${s} s` : `closes in ${Math.ceil(s / 60)} min`;
  if (!a.held_until) return `the agent polls for the answer · ${closes}`;
  const held = secondsUntil(a.held_until, now);
  if (held > 0) return `the agent waits: ${held} s left`;
  return `the agent's call timed out; it can retry until the request ${closes}`;
}
