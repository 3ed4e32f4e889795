"""Issue 19's first "done when", in the real window: a new agent calls an MCP tool marked
`below-floor` and waits; the founder approves it for one hour in the app; the call completes,
and the next call within the hour goes through without asking. The agent is the TypeScript MCP
SDK's real client, talking to the reference filesystem server through `mandate mcp run` (the
stdio gateway, its own process: the app and the gateway meet only in the shared store)."""

import json
import os
import subprocess
import threading

HERE = os.path.dirname(__file__)
SETUP = os.path.join(HERE, "..", "mcp", "setup.sh")
CLI = os.environ["MANDATE_E2E_CLI"]


def mcp_parts(env):
    out = subprocess.run([SETUP], env=env, capture_output=True, text=True, check=True)
    node_dir = out.stdout.splitlines()[0]
    return node_dir


def run_client(install, node_dir, plan):
    """The TS client runs `plan` through `mandate mcp run --agent coder fs`; its last line is JSON."""
    out = subprocess.run(
        ["node", os.path.join(node_dir, "client.mjs"), json.dumps(plan),
         CLI, "mcp", "run", "--agent", "coder", "fs"],
        env={k: v for k, v in install.env.items() if k != "MANDATE_ACTOR"},
        capture_output=True, text=True, timeout=120,
    )
    lines = out.stdout.strip().splitlines()
    assert lines, f"the MCP client printed nothing: {out.stderr}"
    return json.loads(lines[-1])


def test_a_held_mcp_tool_call_completes_when_the_founder_approves_it_for_an_hour(install, app_for, tmp_path):
    node_dir = mcp_parts(install.env)
    files = tmp_path / "files"
    files.mkdir()
    (files / "notes.txt").write_text("quarterly numbers")
    root = str(files.resolve())
    install.cli("member", "add", "founder")
    install.cli(
        "mcp", "add", "fs", "--trust-floor", "TRUSTED", "--",
        "node", os.path.join(node_dir, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"), root,
    )
    install.cli("connection", "edit", "fs", "--action-approval", "read_text_file=below-floor")
    install.cli(
        "agent", "add", "coder", "--owner", "founder", "--purpose", "reads the notes",
        "--scope", "fs:read_text_file", "--generate-key",
    )
    app = app_for(install)
    app.go("approvals")
    app.wait('[data-testid="no-approvals"]')

    plan = [{"op": "call", "name": "read_text_file", "args": {"path": str((files / "notes.txt").resolve())}}]
    result = {}
    t = threading.Thread(target=lambda: result.update(out=run_client(install, node_dir, plan)))
    t.start()

    # A new agent is PENDING, below the server's TRUSTED floor: the tool call waits for a person.
    card = app.wait('[data-testid^="approval-"]', timeout=60)
    text = card.text
    assert "coder asks to call fs:read_text_file" in text, text
    assert "PENDING" in text and "requires at least TRUSTED" in text, text
    # The gateway holds a tool call 50 s by default (under the TS SDK's 60 s request timeout).
    waits = card.find_element("css selector", '[data-testid="time-left"]').text
    assert "the agent waits:" in waits and int(waits.split("waits: ")[1].split(" s")[0]) <= 50, waits
    assert t.is_alive(), f"the tool call was answered before anyone decided: {result}"
    app.screenshot("approvals-mcp-inbox")
    app.button("For 1 hour")
    t.join(60)
    assert not t.is_alive(), "the held tool call never returned"
    step = result["out"]["steps"][0]
    assert step["ok"] is True, result
    assert "quarterly numbers" in json.dumps(step["value"]), result
    app.wait('[data-testid="no-approvals"]')

    # Within the hour the next call goes through without asking anyone.
    again = run_client(install, node_dir, plan)
    assert again["steps"][0]["ok"] is True, again
    assert install.cli_json("approvals", "list") == []
    decided = install.cli_json("approvals", "list", "--all")
    assert len(decided) == 1 and decided[0]["status"] == "approved", decided
    assert decided[0]["decided_by"] == "founder" and decided[0]["valid_until"], decided
