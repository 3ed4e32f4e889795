// Pure helpers of the MCP servers screen: how a tool is described to a person, how a command
// line is split, and the client config entry that routes a server through Mandate.

/** What the screen needs of a tool (the backend's McpTool). */
export type ToolLike = {
  action: string;
  kind: string;
  read_only: boolean | null;
  destructive: boolean | null;
  open_world: boolean | null;
};

/** A short label and tone for a tool's hints: read-only, writes, or destructive (the MCP
 * default for a tool that is not read-only is "may destroy"). Hints come from the server. */
export function hintOf(t: ToolLike): { label: string; tone: "good" | "warn" | "bad" | "muted" } {
  if (t.kind === "prompt") return { label: "prompt", tone: "muted" };
  if (t.kind === "resources") return { label: "reads resources", tone: "good" };
  if (t.read_only === true) return { label: "read-only", tone: "good" };
  if (t.destructive === false) return { label: "writes", tone: "warn" };
  return { label: "destructive", tone: "bad" };
}

/** Split a command line on spaces, keeping "quoted parts" together. */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | null = null;
  let has = false;
  for (const ch of line.trim()) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (/\s/.test(ch)) {
      if (cur || has) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += ch;
    }
  }
  if (cur || has) out.push(cur);
  return out;
}

/** The `.mcp.json` / Claude Desktop / Cursor entry that starts `server` through Mandate as
 * `agent`, pretty-printed for copying. */
export function clientEntry(key: string, agent: string, server: string): string {
  const entry = { mcpServers: { [key]: { command: "mandate", args: ["mcp", "run", "--agent", agent, server] } } };
  return JSON.stringify(entry, null, 2);
}
