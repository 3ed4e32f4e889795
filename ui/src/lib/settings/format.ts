// Wording for the Settings screen (unit-tested in format.test.ts).
import type { EndpointStatus } from "../backend";
import type { Tone } from "../agents/format";

export function endpointTone(state: EndpointStatus["state"]): Tone {
  switch (state) {
    case "running":
      return "good";
    case "starting":
    case "paused":
      return "warn";
    default:
      return "bad";
  }
}

/** Who serves the endpoint, when it is not this app; null when it is. */
export function servedBy(s: EndpointStatus): string | null {
  const pid = s.pid != null ? ` (process ${s.pid})` : "";
  switch (s.served_by) {
    case "service":
      return `Served by the background service${pid}: it keeps running while Mandate is closed.`;
    case "process":
      return `Served by \`mandate serve\`${pid}, started outside this app.`;
    default:
      return null;
  }
}

/** The sidebar's short status (a "service" tag beside it says who serves it). */
export function endpointShort(s: EndpointStatus): string {
  return s.state === "running" ? `Endpoint on :${s.port}` : `Endpoint ${s.state}`;
}

/** One sentence about the endpoint for Settings (and the sidebar). */
export function endpointLine(s: EndpointStatus): string {
  switch (s.state) {
    case "running":
      return `Agents get tokens at ${s.url ?? `http://127.0.0.1:${s.port}`}.`;
    case "starting":
      return `Starting on port ${s.port}…`;
    case "paused":
      return "Paused: agents get no new tokens until you start it.";
    case "failed":
      return "Not running: see why below.";
    default:
      return "Off: Mandate could not open its data.";
  }
}

/** "15 min", "24 h", "1 h 30 min". */
export function lifetime(secs: number): string {
  const h = Math.floor(secs / 3600);
  const m = Math.round((secs % 3600) / 60);
  if (h === 0) return `${m} min`;
  return m === 0 ? `${h} h` : `${h} h ${m} min`;
}

/** The trust thresholds as the form holds them. */
export type ThresholdForm = { trusted: number; pending: number; floor: number };

/** What is wrong with the thresholds, as a sentence; null when they can be saved. */
export function thresholdProblem(t: ThresholdForm): string | null {
  const whole = (n: number) => Number.isInteger(n);
  if (![t.trusted, t.pending, t.floor].every(whole)) return "Scores are whole numbers from 0 to 100.";
  if (t.pending < 1 || t.pending > 99) return "PENDING must start between 1 and 99 (below it an agent is UNTRUSTED).";
  if (t.trusted <= t.pending || t.trusted > 100)
    return `TRUSTED must start above PENDING (${t.pending}) and at most at 100.`;
  if (t.floor < 0 || t.floor > 100) return "The organisation floor is a score from 0 (none) to 100.";
  return null;
}

/** What saving the thresholds did, naming who did it. */
export function thresholdsSaved(t: ThresholdForm, member: string | null): string {
  const floor = t.floor > 0 ? `; every request now needs a score of at least ${t.floor}` : "; no organisation floor";
  return `Saved${member ? ` by ${member}` : ""}: TRUSTED from ${t.trusted}, PENDING from ${t.pending}${floor}.`;
}
