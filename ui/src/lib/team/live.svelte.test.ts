// @vitest-environment jsdom
// A component's effects run only in a browser-like environment, with Svelte's client build.
import { flushSync } from "svelte";
import { describe, expect, it } from "vitest";
import { onLive, refresh, switchTo, workspace } from "./workspace.svelte";

describe("a screen that reads the team workspace again in place", () => {
  it("reads again at each team event, not when it is set up, and stops when it goes", () => {
    workspace.identity = { url: "https://team.example:8443", host: "team.example:8443", member: "alice", role: "admin", fingerprint: null };
    let reads = 0;
    const gone = $effect.root(() => {
      onLive(() => reads++);
    });
    flushSync();
    expect(reads).toBe(0);
    refresh();
    flushSync();
    expect(reads).toBe(1);
    refresh();
    refresh();
    flushSync();
    expect(reads).toBe(2);
    // A switch of workspace draws the screens anew instead (they are keyed on `version`).
    const version = workspace.version;
    switchTo("local");
    flushSync();
    expect(reads).toBe(2);
    expect(workspace.version).toBe(version + 1);
    gone();
    refresh();
    flushSync();
    expect(reads).toBe(2);
  });
});
