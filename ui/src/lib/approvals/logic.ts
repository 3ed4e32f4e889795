// Approvals inbox: wording and choices, kept apart from the component so they are tested.
import type { Approval, ApprovalWindow } from "../backend";

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
