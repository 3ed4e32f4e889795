// Audit events in words: one line per event for the timeline.
import type { AuditCheck, AuditEvent } from "../backend";

const VERBS: Record<string, string> = {
  "agent.created": "registered agent",
  "agent.edited": "changed agent",
  "agent.suspended": "suspended agent",
  "agent.resumed": "resumed agent",
  "agent.revoked": "revoked agent",
  "agent.key_rotated": "rotated the key of",
  "agent.trust_overridden": "set the trust of",
  "member.added": "added team member",
  "member.edited": "changed team member",
  "connection.added": "added connection",
  "connection.removed": "removed connection",
  "connection.secret_set": "stored the secret of",
  "connection.secret_replaced": "replaced the secret of",
  "connection.edited": "changed connection",
  "connection.broker_configured": "configured the broker of",
  "issuer.key_created": "created the issuer key",
  "issuer.key_rotated": "rotated the issuer key",
  "introspection.denied": "was refused an introspection by",
  "token.revocation_denied": "was refused a revocation by",
  "proxy.denied": "was refused a request by",
  "proxy.allowed": "called through",
  "proxy.completed": "called through",
  "credential.moved_to_keychain": "moved a credential from a project file into the keychain for",
  "credential.move_undone": "undid a credential move into",
  "credential.undo_expired": "deleted the previous secret kept for undoing a move into",
  "secret.handed_over": "was handed the database URL of",
  "secret.handover_denied": "was refused the database URL of",
  "endpoint.tls_certificate_created": "created the endpoint's HTTPS certificate",
  "token.issued": "was issued a token by",
  "token.exchanged": "exchanged a token at",
  "token.denied": "was refused a token by",
  "token.revoked": "revoked a token at",
  "token.introspected_inactive": "presented an inactive token to",
  "delegation.added": "delegated to",
  "delegation.revoked": "ended the delegation of",
  "settings.organisation_set": "changed the organisation name",
  "member.invited": "invited to the team",
  "member.removed": "removed from the team",
  "witness.added": "registered witness",
  "witness.removed": "removed witness",
  "witness.cosignature_refused": "was refused a cosignature by the team server for",
  "audit.exported": "exported the audit trail",
};

/** Team server and witness events, whose words depend on their details. */
function describeTeam(e: AuditEvent, who: string): string | null {
  const d = (e.details ?? {}) as Record<string, unknown>;
  const size = typeof d.size === "number" ? d.size.toLocaleString("en-US") : null;
  switch (e.action) {
    case "team.server_initialised":
      return `${who} set up the team server`;
    case "team.joined":
      return `${who} joined the team server ${e.target?.id ?? ""}${typeof d.role === "string" ? ` as ${d.role}` : ""}`.trim();
    case "team.request_denied":
      return `${who} was refused ${typeof d.request === "string" ? d.request : "a request"} on the team server`;
    case "member.token_issued":
      return `${who} signed in to the team server`;
    case "member.token_denied":
      return `${who} was refused a sign-in to the team server`;
    case "member.invite_refused":
      return `${who}: an invite code was refused`;
    case "member.watch_started":
      return `${who} started following the team's audit trail live`;
    case "witness.cosigned":
      return `${who} cosigned the team log's checkpoint${size ? ` of ${size} events` : ""}`;
    case "witness.checkpoint_cosigned":
      return `${who} checked and cosigned the team log${size ? ` at ${size} events` : ""}`;
    case "witness.log_forked":
    case "witness.checkpoint_refused":
      return `${who} refused to cosign: the team server's log does not extend what was seen before`;
    case "witness.log_forgotten":
      return `${who} forgot the team log it witnessed`;
    default:
      return null;
  }
}

/** Common actions for the filter menu; a prefix ending in "." matches a family. */
export const ACTION_CHOICES: { value: string; label: string }[] = [
  { value: "", label: "Every action" },
  { value: "agent.", label: "Agent changes" },
  { value: "agent.revoked", label: "Agent revocations" },
  { value: "token.", label: "Tokens" },
  { value: "token.issued", label: "Tokens issued" },
  { value: "token.denied", label: "Tokens refused" },
  { value: "connection.", label: "Connections" },
  { value: "proxy.", label: "Calls through the broker" },
  { value: "credential.", label: "Credentials moved" },
  { value: "secret.", label: "Database URLs handed over" },
  { value: "member.", label: "Team members" },
  { value: "delegation.", label: "Delegations" },
  { value: "issuer.", label: "Issuer keys" },
  { value: "settings.", label: "Settings" },
  { value: "team.", label: "Team server" },
  { value: "witness.", label: "Witnesses" },
];

/** Who acted, in words: a member's or agent's name ("maria"), "OS user ann (no member
 * chosen)", "Mandate (token endpoint, no agent identified)"; events written before people were
 * named: "ann (the app)", or "the CLI" when no login name was known. */
export function describeActor(actor: AuditEvent["actor"]): string {
  if (actor.kind === "os_user") return `OS user ${actor.name} (no member chosen)`;
  if (actor.kind === "system") return `Mandate (${actor.name})`;
  if (actor.kind !== "app") return actor.name;
  const app = actor.id === "cli" ? "the CLI" : actor.id === "desktop" ? "the app" : actor.id;
  const named = actor.name && actor.name !== "unknown" && actor.name !== "Mandate app";
  return named ? `${actor.name} (${app})` : app;
}

/** What kind of actor, for the event's details: "team member", "agent"; null where
 * [describeActor] already says it. */
export function actorKind(actor: AuditEvent["actor"]): string | null {
  if (actor.kind === "member") return "team member";
  if (actor.kind === "agent") return "agent";
  return null;
}

/** "founder revoked agent billing-report-agent". */
export function describeEvent(e: AuditEvent): string {
  const who = describeActor(e.actor);
  const target = e.target?.name ?? "";
  const verb = VERBS[e.action];
  const byEndpoint = /^(token|introspection|proxy)\./.test(e.action) && e.actor.kind === "agent";
  if (verb && byEndpoint) return `${who} ${verb} ${e.action.startsWith("proxy.") ? "the broker" : "the endpoint"}`;
  if (verb && /^(issuer|endpoint|settings)\./.test(e.action)) return `${who} ${verb}`;
  const team = describeTeam(e, who);
  if (team) return team;
  if (e.action === "person.chosen") {
    const d = e.details as { os_user?: unknown } | null;
    const os = typeof d?.os_user === "string" ? ` for the OS user ${d.os_user}` : "";
    return `${who} is now the person using Mandate${os}`;
  }
  if (verb) return [who, verb, target].filter(Boolean).join(" ");
  return [who, e.action, target].filter(Boolean).join(" · ");
}

/** "2026-11-23 09:00:05" in local time, from the event's RFC 3339 time. */
export function eventTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The line under the Audit heading: it claims "signed" only once a checkpoint is. */
export function auditSubtitle(c: AuditCheck | null): string {
  const base = "Every change and every decision, newest first";
  if (c && c.checkpoint === null) {
    return `${base}, each hash-chained to the one before. Signing starts with the first checkpoint.`;
  }
  return `${base}, hash-chained and signed.`;
}

/** The banner over the timeline, as a tone and a sentence. */
export function verifyBanner(c: AuditCheck): { tone: "good" | "bad"; text: string } {
  const n = c.events.toLocaleString("en-US");
  if (c.ok && c.checkpoint) {
    const cp = `, checkpoint of ${c.checkpoint.size.toLocaleString("en-US")} events signed ${eventTime(c.checkpoint.time)} by ${c.checkpoint.key_fingerprint}`;
    return { tone: "good", text: `Verified: ${n} events${cp}. Nothing was changed, removed or inserted.` };
  }
  if (c.ok) {
    return {
      tone: "good",
      text:
        `Verified: ${n} events, every hash link holds. Not signed yet: Mandate signs the first ` +
        "checkpoint 10 minutes after the first event, or at once when you export.",
    };
  }
  const p = c.first_problem;
  const where = p?.seq != null ? `event #${p.seq}` : "the log";
  const more = c.problem_count > 1 ? ` (${c.problem_count - 1} more problem${c.problem_count > 2 ? "s" : ""} after it)` : "";
  return {
    tone: "bad",
    text: `Broken at ${where}: ${p?.message ?? "the trail does not verify"}${more}. Keep a copy of the data folder as it is and run \`mandate audit verify\` for the full report.`,
  };
}

/** Details worth a glance, as "key: value" pairs (objects shown as compact JSON). */
export function detailPairs(e: AuditEvent): [string, string][] {
  const d = e.details;
  if (!d || typeof d !== "object" || Array.isArray(d)) return [];
  return Object.entries(d as Record<string, unknown>).map(([k, v]) => [
    k,
    typeof v === "string" ? v : JSON.stringify(v),
  ]);
}
