// A connection's broker limits in words, and the Limits form's parsing: an empty field is no
// limit; anything else must be a whole number of at least 1.
import type { BrokerView, CredentialPlacement } from "../backend";
import { placementLabel } from "./presets";

/** The lines under "Limits": rate, budget, and what stays essential. */
export function limitsSummary(b: BrokerView | undefined): string[] {
  if (!b) return [];
  const lines = [
    b.rate_per_minute == null ? "no rate limit" : `${b.rate_per_minute} calls/min per agent`,
    b.daily_budget == null ? "no daily budget" : `${b.daily_budget} units/day per agent`,
  ];
  if (b.daily_budget != null && b.essential.length > 0) lines.push(`essential past 90 %: ${b.essential.join(", ")}`);
  return lines;
}

/** Where the credential goes, in words ("x-api-key header"). */
export function authText(auth: CredentialPlacement): string {
  return placementLabel("name" in auth ? `${auth.kind}:${auth.name}` : auth.kind);
}

export function parseLimit(text: string, what: string): { value: number | null } | { error: string } {
  const t = text.trim();
  if (t === "") return { value: null };
  if (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > 4_294_967_295) {
    return { error: `The ${what} must be a whole number of at least 1, or empty for no limit.` };
  }
  return { value: Number(t) };
}
