// A real MCP client (the TypeScript SDK's) for Mandate's gateway tests. It starts the command
// given after the plan, runs the plan's steps in order and prints one JSON line of results.
// Usage: node client.mjs PLAN_JSON COMMAND [ARGS...]   or   node client.mjs PLAN_JSON URL
// Steps: {"op":"tools"} | {"op":"prompts"} | {"op":"call","name":N,"args":{...}}
//        | {"op":"prompt","name":N} | {"op":"resources"}
//        | {"op":"mark","file":PATH} (creates it) | {"op":"wait","file":PATH} (until it exists)
import { existsSync, writeFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [plan, command, ...args] = process.argv.slice(2);
const out = { connected: false, steps: [] };
const client = new Client({ name: "mandate-test-ts", version: "1.0.0" });
// An http(s) URL instead of a command: Streamable HTTP, with the token from MANDATE_MCP_TOKEN.
const transport = command.startsWith("http")
  ? new StreamableHTTPClientTransport(new URL(command), {
      requestInit: { headers: { Authorization: `Bearer ${process.env.MANDATE_MCP_TOKEN}` } },
    })
  : new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
try {
  await client.connect(transport);
  out.connected = true;
} catch (e) {
  out.connect_error = String(e.message ?? e);
  console.log(JSON.stringify(out));
  process.exit(0);
}
for (const step of JSON.parse(plan)) {
  try {
    let value;
    if (step.op === "tools") value = (await client.listTools()).tools.map((t) => t.name);
    else if (step.op === "prompts") value = (await client.listPrompts()).prompts.map((p) => p.name);
    else if (step.op === "resources") value = (await client.listResources()).resources.length;
    else if (step.op === "prompt") value = await client.getPrompt({ name: step.name, arguments: step.args ?? {} });
    else if (step.op === "call") value = await client.callTool({ name: step.name, arguments: step.args ?? {} });
    else if (step.op === "mark") {
      writeFileSync(step.file, "");
      value = null;
    } else if (step.op === "wait") {
      while (!existsSync(step.file)) await new Promise((r) => setTimeout(r, 20));
      value = null;
    }
    out.steps.push({ ok: true, value });
  } catch (e) {
    out.steps.push({ ok: false, code: e.code ?? null, error: String(e.message ?? e) });
  }
}
await client.close();
console.log(JSON.stringify(out));
