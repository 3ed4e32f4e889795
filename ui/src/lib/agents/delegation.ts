// The Delegate form's rules: which scopes may be delegated (the agent's own), when a
// delegation may end (in the future, at most 90 days ahead (the core's limit)), and its task in words.

export const MAX_DAYS = 90;

/** `datetime-local` value ("2026-11-24T17:00") for `d` in local time. */
export function localInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The form's problems, in order, or an RFC 3339 end time when it is fine. */
export function checkDelegation(
  form: { member: string; scopes: string[]; until: string; task: string },
  now: Date,
): { problem: string } | { until: string } {
  if (form.member.trim() === "") return { problem: "Choose the team member the agent acts for." };
  if (form.scopes.length === 0) return { problem: "Tick at least one scope to delegate." };
  if (form.task.trim() === "") return { problem: "Say what the task is: every token minted under it names the task." };
  if (form.task.trim().length > 200) return { problem: "Keep the task under 200 characters." };
  const until = new Date(form.until);
  if (form.until === "" || Number.isNaN(until.getTime())) return { problem: "Choose when the delegation ends." };
  if (until.getTime() <= now.getTime()) return { problem: "The end must be in the future." };
  if (until.getTime() - now.getTime() > MAX_DAYS * 86_400_000) {
    return { problem: `A delegation lasts at most ${MAX_DAYS} days; choose an earlier end.` };
  }
  return { until: until.toISOString() };
}
