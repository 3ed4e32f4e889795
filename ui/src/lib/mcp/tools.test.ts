import { describe, expect, it } from "vitest";
import { clientEntry, hintOf, splitCommand } from "./tools";

const tool = (read_only: boolean | null, destructive: boolean | null, kind = "tool") => ({
  action: "x",
  kind,
  read_only,
  destructive,
  open_world: null,
});

describe("hintOf", () => {
  it("marks read-only tools good and treats silence as destructive", () => {
    expect(hintOf(tool(true, null)).label).toBe("read-only");
    expect(hintOf(tool(false, false)).label).toBe("writes");
    expect(hintOf(tool(false, true))).toEqual({ label: "destructive", tone: "bad" });
    expect(hintOf(tool(null, null))).toEqual({ label: "destructive", tone: "bad" });
    expect(hintOf(tool(true, null, "prompt")).label).toBe("prompt");
  });
});

describe("splitCommand", () => {
  it("splits on spaces and keeps quoted parts", () => {
    expect(splitCommand("npx -y @modelcontextprotocol/server-github")).toEqual([
      "npx",
      "-y",
      "@modelcontextprotocol/server-github",
    ]);
    expect(splitCommand(`node "/my files/server.js"  --root ''`)).toEqual(["node", "/my files/server.js", "--root", ""]);
    expect(splitCommand("   ")).toEqual([]);
  });
});

describe("clientEntry", () => {
  it("routes the server through mandate mcp run as the agent", () => {
    const v = JSON.parse(clientEntry("github", "coder", "github-mcp"));
    expect(v.mcpServers.github).toEqual({ command: "mandate", args: ["mcp", "run", "--agent", "coder", "github-mcp"] });
  });
});
