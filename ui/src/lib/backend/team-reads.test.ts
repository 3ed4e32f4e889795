import { beforeEach, describe, expect, it, vi } from "vitest";

// The member API as the backend layer calls it: each test says what the server answers.
const server: { answer: (method: string, path: string) => { status: "ok"; data: { value: unknown } } | { status: "error"; error: { code: string; message: string } } } = {
  answer: () => ({ status: "ok", data: { value: [] } }),
};
vi.mock("@tauri-apps/api/core", () => ({ Channel: class {} }));
// The app's event listeners, so a test can deliver a team event.
const listeners = new Map<string, (e: { payload: unknown }) => void>();
vi.mock("@tauri-apps/api/event", () => ({
  listen: async (name: string, on: (e: { payload: unknown }) => void) => {
    listeners.set(name, on);
    return () => listeners.delete(name);
  },
}));
vi.mock("./bindings", () => ({
  commands: {
    teamCall: async (method: string, path: string) => server.answer(method, path),
  },
}));

const { backend, BackendError, eventReloads, forgetTeamReads } = await import("./index");
const { setConnection, workspace } = await import("../team/workspace.svelte");

const down = { status: "error" as const, error: { code: "unreachable", message: "The team server cannot be reached (...); nothing was changed." } };
const agents = [{ name: "billing-bot" }];

function joined(url: string, member = "alice", role = "admin") {
  workspace.identity = { url, host: url.slice(8), member, role, fingerprint: null };
  workspace.mode = "team";
}

/** The stream's state, as the banner shows it. */
function streamUp(online: boolean) {
  workspace.connection = { online, message: online ? null : "The team server did not answer.", last_online: null };
}

/** The agents are read while the stream is up; then the server goes away, and the stream has
 * not said so yet. */
async function readThenServerGone() {
  streamUp(true);
  server.answer = () => ({ status: "ok", data: { value: agents } });
  await backend.listAgents();
  server.answer = () => down;
}

/** The stream's own report that the server went away. */
function streamDown() {
  setConnection({ online: false, message: "The team server did not answer.", last_online: null });
}

describe("team reads while the server cannot be reached", () => {
  beforeEach(() => {
    forgetTeamReads();
    joined("https://team.example:8443");
    streamUp(false);
  });

  it("show what was last read instead of an error", async () => {
    server.answer = () => ({ status: "ok", data: { value: agents } });
    expect(await backend.listAgents()).toEqual(agents);
    server.answer = () => down;
    expect(await backend.listAgents()).toEqual(agents);
  });

  it("are errors when nothing was read before, or when the error is not about reaching the server", async () => {
    server.answer = () => down;
    await expect(backend.teamMembers()).rejects.toBeInstanceOf(BackendError);
    server.answer = () => ({ status: "ok", data: { value: [{ name: "bob" }] } });
    await backend.teamMembers();
    server.answer = () => ({ status: "error", error: { code: "refused", message: "The team server refused: admins only" } });
    await expect(backend.teamMembers()).rejects.toThrow("admins only");
  });

  it("are not shown for an answer that came but could not be used", async () => {
    server.answer = () => ({ status: "ok", data: { value: agents } });
    await backend.listAgents();
    // A proxy's HTML error page, say: the server (or something in front of it) is there.
    server.answer = () => ({ status: "error", error: { code: "bad_answer", message: "The team server's answer could not be used (HTTP 502 without a JSON body); nothing was changed" } });
    await expect(backend.listAgents()).rejects.toThrow("could not be used");
  });

  it("never answer a change from memory", async () => {
    server.answer = () => ({ status: "ok", data: { value: agents[0] } });
    await backend.suspendAgent("billing-bot", null);
    server.answer = () => down;
    await expect(backend.suspendAgent("billing-bot", null)).rejects.toThrow("nothing was changed");
  });

  it("never show one server's answers for another's", async () => {
    server.answer = () => ({ status: "ok", data: { value: agents } });
    await backend.listAgents();
    joined("https://other-team.example:8443");
    server.answer = () => down;
    await expect(backend.listAgents()).rejects.toBeInstanceOf(BackendError);
  });

  it("are not used while the stream stays up: a failing read then says so", async () => {
    await readThenServerGone();
    vi.useFakeTimers();
    try {
      const read = backend.listAgents();
      const failed = expect(read).rejects.toBeInstanceOf(BackendError);
      // It waits for the stream a moment, and the stream says nothing.
      await vi.advanceTimersByTimeAsync(2900);
      let settled = false;
      read.catch(() => (settled = true));
      await Promise.resolve();
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(200);
      await failed;
    } finally {
      vi.useRealTimers();
    }
  });

  it("are shown when the stream reports the server gone just after the read failed", async () => {
    await readThenServerGone();
    const read = backend.listAgents();
    await new Promise((r) => setTimeout(r, 10));
    streamDown();
    expect(await read).toEqual(agents);
  });

  it("are not shown when a team event made them out of date while the read waited", async () => {
    await readThenServerGone();
    const read = backend.listAgents();
    const stop = await backend.onTeamEvent(() => {});
    listeners.get("team-event")!({ payload: { seq: 11, action: "agent.revoked" } });
    stop();
    streamDown();
    await expect(read).rejects.toBeInstanceOf(BackendError);
  });

  it("are forgotten at a team event that may change what they list", async () => {
    server.answer = () => ({ status: "ok", data: { value: agents } });
    await backend.listAgents();
    const stop = await backend.onTeamEvent(() => {});
    listeners.get("team-event")!({ payload: { seq: 9, action: "agent.suspended" } });
    stop();
    server.answer = () => down;
    await expect(backend.listAgents()).rejects.toBeInstanceOf(BackendError);
  });

  it("outlive sign-ins and streams opened, except the trail's own pages", async () => {
    server.answer = () => ({ status: "ok", data: { value: agents } });
    await backend.listAgents();
    server.answer = () => ({ status: "ok", data: { value: [] } });
    await backend.auditPage({}, 50, null);
    const stop = await backend.onTeamEvent(() => {});
    listeners.get("team-event")!({ payload: { seq: 10, action: "member.watch_started" } });
    stop();
    server.answer = () => down;
    expect(await backend.listAgents()).toEqual(agents);
    await expect(backend.auditPage({}, 50, null)).rejects.toBeInstanceOf(BackendError);
  });

  it("belong to one member and role on the server", async () => {
    server.answer = () => ({ status: "ok", data: { value: agents } });
    await backend.listAgents();
    joined("https://team.example:8443", "bob", "auditor");
    server.answer = () => down;
    await expect(backend.listAgents()).rejects.toBeInstanceOf(BackendError);
  });
});

describe("team events", () => {
  it("reload every screen when they may change what it lists", () => {
    for (const screen of ["agents", "audit", "connections", "mcp", "approvals", "settings"]) {
      expect(eventReloads("agent.revoked", screen)).toBe(true);
      expect(eventReloads(undefined, screen)).toBe(true);
    }
  });

  it("that change only the trail reload only the audit screen", () => {
    for (const action of ["member.token_issued", "member.watch_started", "witness.cosigned"]) {
      expect(eventReloads(action, "audit")).toBe(true);
      for (const screen of ["agents", "connections", "mcp", "approvals", "settings"]) {
        expect(eventReloads(action, screen)).toBe(false);
      }
    }
  });
});
