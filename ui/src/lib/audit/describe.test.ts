import { describe, expect, it } from "vitest";
import type { AuditCheck, AuditEvent } from "../backend";
import { actorKind, auditSubtitle, describeActor, describeEvent, detailPairs, verifyBanner } from "./describe";

function ev(over: Partial<AuditEvent>): AuditEvent {
  return {
    seq: 7,
    time: "2026-11-23T09:00:00.000000Z",
    actor: { kind: "member", id: "m1", name: "founder" },
    on_behalf_of: null,
    agent: "a1",
    action: "agent.revoked",
    target: { kind: "agent", id: "a1", name: "billing-report-agent" },
    decision: "allow",
    reason: "left the team",
    details: { from: "active", to: "revoked" },
    ...over,
  };
}

const check: AuditCheck = {
  ok: true,
  events: 1234,
  checkpoint: { size: 1200, time: "2026-11-23T09:00:00Z", root: "ab", key_fingerprint: "SHA256:xyz" },
  checkpoints_verified: 3,
  first_problem: null,
  problem_count: 0,
  notes: [],
};

describe("events in words", () => {
  it("names who did what to whom", () => {
    expect(describeEvent(ev({}))).toBe("founder revoked agent billing-report-agent");
    expect(
      describeEvent(ev({ actor: { kind: "app", id: "desktop", name: "ann" }, action: "connection.added", target: { kind: "connection", id: "c", name: "github" } })),
    ).toBe("ann (the app) added connection github");
    expect(describeEvent(ev({ actor: { kind: "app", id: "cli", name: "unknown" }, action: "member.added", target: { kind: "member", id: "m", name: "maria" } }))).toBe(
      "the CLI added team member maria",
    );
    expect(describeEvent(ev({ action: "something.new" }))).toBe("founder · something.new · billing-report-agent");
    expect(
      describeEvent(ev({ action: "credential.moved_to_keychain", target: { kind: "connection", id: "c", name: "github" } })),
    ).toBe("founder moved a credential from a project file into the keychain for github");
    // Issue 17: a replacement is named as one, and so is a hand-over of a database URL.
    expect(
      describeEvent(ev({ action: "connection.secret_replaced", target: { kind: "connection", id: "c", name: "github" } })),
    ).toBe("founder replaced the secret of github");
    expect(
      describeEvent(ev({ action: "credential.move_undone", target: { kind: "connection", id: "c", name: "github" } })),
    ).toBe("founder undid a credential move into github");
    expect(
      describeEvent(
        ev({ actor: { kind: "agent", id: "a1", name: "bot" }, action: "secret.handed_over", target: { kind: "connection", id: "c", name: "app" } }),
      ),
    ).toBe("bot was handed the database URL of app");
    expect(describeEvent(ev({ actor: { kind: "agent", id: "a1", name: "bot" }, action: "proxy.completed" }))).toBe("bot called through the broker");
    expect(describeEvent(ev({ actor: { kind: "app", id: "cli", name: "ann" }, action: "endpoint.tls_certificate_created" }))).toBe(
      "ann (the CLI) created the endpoint's HTTPS certificate",
    );
    expect(
      describeEvent(ev({ actor: { kind: "agent", id: "a1", name: "billing-report-agent" }, action: "token.issued" })),
    ).toBe("billing-report-agent was issued a token by the endpoint");
  });

  it("names people: a member, an OS login without one, and Mandate only where nobody acted", () => {
    expect(describeActor({ kind: "member", id: "m1", name: "ann" })).toBe("ann");
    expect(actorKind({ kind: "member", id: "m1", name: "ann" })).toBe("team member");
    expect(describeActor({ kind: "os_user", id: "ann", name: "ann" })).toBe("OS user ann (no member chosen)");
    expect(actorKind({ kind: "os_user", id: "ann", name: "ann" })).toBeNull();
    expect(describeActor({ kind: "system", id: "endpoint", name: "token endpoint, no agent identified" })).toBe(
      "Mandate (token endpoint, no agent identified)",
    );
    expect(
      describeEvent(
        ev({ actor: { kind: "member", id: "m1", name: "ann" }, action: "person.chosen", target: { kind: "member", id: "m1", name: "ann" }, details: { os_user: "ann", previous: null } }),
      ),
    ).toBe("ann is now the person using Mandate for the OS user ann");
    expect(
      describeEvent(ev({ action: "settings.organisation_set", target: { kind: "settings", id: "organisation_name", name: "organisation name" } })),
    ).toBe("founder changed the organisation name");
  });

  it("says what happened on the team server and to its log's witnesses", () => {
    const alice = { kind: "member", id: "m1", name: "alice" };
    expect(describeEvent(ev({ actor: alice, agent: null, action: "member.watch_started", target: null, details: {} }))).toBe(
      "alice started following the team's audit trail live",
    );
    expect(
      describeEvent(ev({ actor: alice, agent: null, action: "team.request_denied", target: null, details: { request: "connection.add" } })),
    ).toBe("alice was refused connection.add on the team server");
    expect(
      describeEvent(
        ev({ actor: { kind: "witness", id: "1a2b3c4d", name: "team.example/bob-3f2a9c" }, agent: null, action: "witness.cosigned", target: null, details: { size: 1234 } }),
      ),
    ).toBe("team.example/bob-3f2a9c cosigned the team log's checkpoint of 1,234 events");
    expect(describeEvent(ev({ actor: alice, agent: null, action: "witness.log_forked", target: null, details: {} }))).toContain(
      "refused to cosign",
    );
    expect(
      describeEvent(
        ev({ actor: alice, agent: null, action: "team.joined", target: { kind: "server", id: "https://team.example", name: "team server" }, details: { role: "admin" } }),
      ),
    ).toBe("alice joined the team server https://team.example as admin");
    expect(describeEvent(ev({ actor: alice, action: "audit.exported", target: null, details: {} }))).toBe("alice exported the audit trail");
  });

  it("lists details as pairs", () => {
    expect(detailPairs(ev({}))).toEqual([
      ["from", "active"],
      ["to", "revoked"],
    ]);
    expect(detailPairs(ev({ details: { n: [1, 2] } }))).toEqual([["n", "[1,2]"]]);
    expect(detailPairs(ev({ details: null }))).toEqual([]);
  });
});

describe("verification banner", () => {
  it("says how many events verified and against which checkpoint", () => {
    const b = verifyBanner(check);
    expect(b.tone).toBe("good");
    expect(b.text).toMatch(/^Verified: 1,234 events, checkpoint of 1,200 events signed .* by SHA256:xyz\./);
  });

  it("claims signed only once a checkpoint is signed, in the banner and under the heading", () => {
    const unsigned = { ...check, checkpoint: null, checkpoints_verified: 0 };
    const b = verifyBanner(unsigned);
    expect(b.tone).toBe("good");
    expect(b.text).toMatch(/^Verified: 1,234 events, every hash link holds\. Not signed yet/);
    expect(auditSubtitle(unsigned)).not.toMatch(/signed\./);
    expect(auditSubtitle(unsigned)).toMatch(/hash-chained/);
    expect(auditSubtitle(check)).toMatch(/hash-chained and signed\.$/);
  });

  it("names the first broken event", () => {
    const b = verifyBanner({
      ...check,
      ok: false,
      first_problem: { kind: "edited", seq: 42, message: "event 42 was changed after it was written" },
      problem_count: 3,
    });
    expect(b.tone).toBe("bad");
    expect(b.text).toMatch(/^Broken at event #42: event 42 was changed after it was written \(2 more problems after it\)\./);
  });
});

describe("describeActor", () => {
  it("names the app, not 'unknown', when no login name was known", () => {
    expect(describeActor({ kind: "app", id: "desktop", name: "unknown" })).toBe("the app");
    expect(describeActor({ kind: "app", id: "desktop", name: "Mandate app" })).toBe("the app");
    expect(describeActor({ kind: "app", id: "cli", name: "" })).toBe("the CLI");
  });
  it("keeps a known login name beside the app part", () => {
    expect(describeActor({ kind: "app", id: "desktop", name: "ann" })).toBe("ann (the app)");
    expect(describeActor({ kind: "member", id: "m1", name: "maria" })).toBe("maria");
  });
});
