import { describe, expect, it, vi } from "vitest";

// The export command's progress channel, as the backend layer set it up.
const seen: { channel?: { onmessage: (p: unknown) => void } } = {};

vi.mock("@tauri-apps/api/core", () => ({
  Channel: class {
    onmessage: (p: unknown) => void = () => {};
  },
}));

vi.mock("./bindings", () => ({
  commands: {
    exportAudit: async (..._args: unknown[]) => {
      const channel = _args[4] as { onmessage: (p: unknown) => void };
      seen.channel = channel;
      channel.onmessage({ percent: 50, stage: "writing events" });
      return { status: "ok", data: { events: 0, path: "/tmp/x.jsonl" } };
    },
  },
}));

const { backend } = await import("./index");

describe("exportAudit", () => {
  it("reports progress while the export runs, and none after its answer", async () => {
    const progress: unknown[] = [];
    const done = await backend.exportAudit("json_lines", null, { since: null, until: null }, (p) =>
      progress.push(p),
    );
    expect(done).toEqual({ events: 0, path: "/tmp/x.jsonl" });
    // A progress message that arrives after the answer (its own IPC path) is dropped.
    seen.channel?.onmessage({ percent: 100, stage: "done" });
    expect(progress).toEqual([{ percent: 50, stage: "writing events" }]);
  });
});
