import { describe, expect, it } from "vitest";
import { connectBlocker, connectWays } from "./connect";

describe("connect lines", () => {
  const ways = connectWays("billing-report-agent");

  it("offers the three ways, each naming the agent", () => {
    expect(ways.map((w) => w.id)).toEqual(["sdk", "timer", "cron", "file"]);
    for (const w of ways) expect(w.text).toContain("mandate exec billing-report-agent -- ");
  });

  it("writes a timer that a user manager can load and a cron line that reaches the keychain", () => {
    const timer = ways.find((w) => w.id === "timer")!.text;
    expect(timer).toContain("# ~/.config/systemd/user/billing-report-agent.timer");
    expect(timer).toContain("WantedBy=timers.target");
    expect(timer).toContain("systemctl --user enable --now billing-report-agent.timer");
    const cron = ways.find((w) => w.id === "cron")!.text;
    expect(cron).toMatch(/^0 6 \* \* \* DBUS_SESSION_BUS_ADDRESS=unix:path=\/run\/user\/\$\(id -u\)\/bus mandate exec/m);
  });

  it("says when the lines cannot work for this agent", () => {
    const key = { origin: "keychain", expires_at: null };
    expect(connectBlocker({ status: "active", dpop_required: false, keys: [key] })).toBeNull();
    expect(connectBlocker({ status: "revoked", dpop_required: false, keys: [key] })).toMatch(/revoked/);
    expect(
      connectBlocker({ status: "active", dpop_required: false, keys: [{ origin: "registered", expires_at: null }] }),
    ).toMatch(/not in this machine's keychain/);
    expect(
      connectBlocker(
        { status: "active", dpop_required: false, keys: [{ origin: "keychain", expires_at: "2020-01-01T00:00:00Z" }] },
        new Date("2026-01-01"),
      ),
    ).toMatch(/not in this machine's keychain/);
    expect(connectBlocker({ status: "active", dpop_required: true, keys: [key] })).toMatch(/DPoP/);
  });
});
