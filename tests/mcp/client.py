"""A real MCP client (the Python SDK's, `mcp`) for Mandate's gateway tests.

Usage: python client.py PLAN_JSON COMMAND [ARGS...]. Runs the plan's steps (the same as
client.mjs: tools, prompts, call, prompt) against the command over stdio and prints one JSON
line of results. A JSON-RPC error is reported as ok=false with its code and message.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError


async def main() -> None:
    plan = json.loads(sys.argv[1])
    # The whole environment: the bridge needs Mandate's data folder and the keychain's bus.
    params = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:], env=dict(os.environ))
    out = {"connected": False, "steps": []}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            out["connected"] = True
            for step in plan:
                try:
                    op = step["op"]
                    if op == "tools":
                        value = [t.name for t in (await session.list_tools()).tools]
                    elif op == "prompts":
                        value = [p.name for p in (await session.list_prompts()).prompts]
                    elif op == "call":
                        r = await session.call_tool(step["name"], step.get("args", {}))
                        value = {
                            "isError": r.is_error,
                            "content": [c.model_dump(mode="json") for c in r.content],
                        }
                    elif op == "prompt":
                        r = await session.get_prompt(step["name"], step.get("args", {}))
                        value = len(r.messages)
                    else:
                        raise ValueError(f"unknown step {op}")
                    out["steps"].append({"ok": True, "value": value})
                except MCPError as e:
                    out["steps"].append(
                        {"ok": False, "code": e.error.code, "error": e.error.message}
                    )
    print(json.dumps(out))


asyncio.run(main())
