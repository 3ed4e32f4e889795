import { describe, expect, it } from "vitest";
import type { AuditEvent, AuditQuery } from "../backend";
import { Timeline, isFiltered } from "./timeline";

function event(seq: number, over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    seq,
    time: "2026-11-23T09:00:00.000000Z",
    actor: { kind: "app", id: "cli", name: "founder" },
    on_behalf_of: null,
    agent: null,
    action: seq % 2 ? "token.issued" : "agent.edited",
    target: null,
    decision: seq % 3 ? "allow" : "deny",
    reason: null,
    details: {},
    ...over,
  };
}

/** A fake backend over a log of `n` events. */
function backend(n: number) {
  const calls: (number | null)[] = [];
  const fetch = async (q: AuditQuery, limit: number, before: number | null) => {
    calls.push(before);
    const out: AuditEvent[] = [];
    for (let s = Math.min(n, (before ?? n + 1) - 1); s >= 1 && out.length < limit; s--) {
      const e = event(s);
      if (q.decision && e.decision !== q.decision) continue;
      if (q.action && e.action !== q.action) continue;
      out.push(e);
    }
    return { events: out, head: n };
  };
  return { fetch, calls };
}

describe("Timeline", () => {
  it("maps rows to sequence numbers and loads only the blocks in view", async () => {
    const b = backend(1_000_000);
    const t = new Timeline(b.fetch, {}, () => {}, 200);
    await t.start();
    expect(t.total).toBe(1_000_000);
    expect(t.get(0)?.seq).toBe(1_000_000);
    await t.ensure(500_000, 500_030);
    expect(t.get(500_000)?.seq).toBe(500_000);
    expect(t.get(500_029)?.seq).toBe(499_971);
    expect(t.get(999_999)).toBeUndefined();
    await t.ensure(999_990, 1_000_000);
    expect(t.get(999_999)?.seq).toBe(1);
    expect(t.cached).toBeLessThanOrEqual(600);
    expect(b.calls.length).toBe(3);
  });

  it("does not fetch a block twice", async () => {
    const b = backend(1000);
    const t = new Timeline(b.fetch, {}, () => {}, 100);
    await t.start();
    await Promise.all([t.ensure(150, 160), t.ensure(150, 160)]);
    await t.ensure(100, 199);
    expect(b.calls.length).toBe(2);
  });

  it("appends pages when filtered, until the matches run out", async () => {
    const b = backend(1000);
    const t = new Timeline(b.fetch, { decision: "deny" }, () => {}, 100);
    await t.start();
    expect(t.total).toBe(100);
    expect(t.more).toBe(true);
    expect(t.get(0)?.seq).toBe(999);
    await t.ensure(90, 100);
    expect(t.total).toBe(200);
    for (let i = 0; i < 5; i++) await t.ensure(t.total - 10, t.total);
    expect(t.total).toBe(333);
    expect(t.more).toBe(false);
    expect(t.get(332)?.seq).toBe(3);
  });

  it("treats a member or a time range as a filter (pages appended, not seq arithmetic)", () => {
    expect(isFiltered({})).toBe(false);
    expect(isFiltered({ member: " " })).toBe(false);
    expect(isFiltered({ member: "ana" })).toBe(true);
    expect(isFiltered({ since: "2026-11-23T11:00:00Z" })).toBe(true);
    expect(isFiltered({ until: "2026-11-23T11:00:00Z" })).toBe(true);
  });

  it("handles an empty log", async () => {
    const t = new Timeline(backend(0).fetch, {});
    await t.start();
    expect(t.total).toBe(0);
    await t.ensure(0, 10);
    expect(t.get(0)).toBeUndefined();
  });
});
