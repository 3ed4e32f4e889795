"""A deliberately broken MCP server for the gateway's failure tests (plain stdio JSON-RPC).

It answers `initialize` and `tools/list` (tools `crash` and `hang`); `tools/call` of `crash`
makes it exit at once without answering, `hang` is never answered. It writes each request's
method to the file named by CRASHY_LOG, so a test can see what reached it.
"""

import json
import os
import sys

log = open(os.environ.get("CRASHY_LOG", os.devnull), "a", buffering=1)
for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method")
    log.write(f"{method} {json.dumps(msg.get('params', {}).get('name'))}\n")
    if "id" not in msg:
        continue
    if method == "initialize":
        result = {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "crashy", "version": "1"},
        }
    elif method == "tools/list":
        result = {
            "tools": [
                {"name": n, "inputSchema": {"type": "object"}} for n in ("crash", "hang")
            ]
        }
    elif method == "tools/call" and msg["params"]["name"] == "crash":
        sys.exit(3)
    elif method == "tools/call":
        continue
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
