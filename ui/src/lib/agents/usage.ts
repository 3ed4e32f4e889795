// An agent's budget on one connection today, in words and a tone for its badge.
import type { UsageView } from "../backend";
import type { Tone } from "./format";

export function usageLine(u: Pick<UsageView, "used" | "daily_budget" | "state" | "rate_per_minute">): string {
  const rate = u.rate_per_minute == null ? "" : ` · ${u.rate_per_minute}/min`;
  switch (u.state) {
    case "unlimited":
      return `${u.used} units, no budget${rate}`;
    case "ok":
      return `${u.used} of ${u.daily_budget} units${rate}`;
    case "essential_only":
      return `${u.used} of ${u.daily_budget}: essential actions only${rate}`;
    case "exhausted":
      return `${u.used} of ${u.daily_budget}: exhausted until midnight UTC`;
  }
}

export function usageTone(state: UsageView["state"]): Tone {
  return state === "exhausted" ? "bad" : state === "essential_only" ? "warn" : state === "ok" ? "good" : "muted";
}
