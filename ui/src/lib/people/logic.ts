// Who is using Mandate, in words, and the small helps of the form that asks. The rules (what a
// member name may be, what an email is) live in the core; these only shape what a person types.
import type { Member, PersonStatus } from "../backend";

/** A member name from what a person typed as their name: "Ann Smith" → "ann-smith". Empty
 * when nothing usable remains (the core then says why). */
export function handleFrom(typed: string): string {
  return typed
    .trim()
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "")
    .slice(0, 63)
    .replace(/-+$/, "");
}

/** "ann (ann@example.com)", or the name alone. */
export function memberLine(m: Pick<Member, "name" | "email">): string {
  return m.email ? `${m.name} (${m.email})` : m.name;
}

/** The sentence Settings shows about who changes name. */
export function personLine(s: PersonStatus): string {
  const login = s.os_user ? ` for the OS user ${s.os_user}` : "";
  if (!s.member) return `Nobody is chosen yet${login}: Mandate makes no change until you say who you are.`;
  return `Changes made in this window are recorded as ${memberLine(s.member)}${login}. The CLI of this login uses the same choice.`;
}
