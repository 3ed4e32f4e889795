"""MCP servers: import a Claude-Code-style .mcp.json with a plain token from the window; the
token moves to the keychain, the file is rewritten to `mandate mcp run`, the server's tools are
read from the real reference server and shown read-only first; undo puts the file back."""

import json
import os
import subprocess

from selenium.webdriver.common.by import By

TOKEN = "ghp_E2eMcpToken0123456789abcdefABCDEFghij"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def everything_server():
    out = subprocess.run(
        [os.path.join(ROOT, "tests", "mcp", "setup.sh")], capture_output=True, text=True, check=True
    )
    node_dir = out.stdout.splitlines()[0]
    return os.path.join(node_dir, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")


def test_import_a_client_config_and_see_the_tools(install, app_for, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    config = project / ".mcp.json"
    config.write_text(json.dumps({
        "mcpServers": {
            "github": {
                "command": "node",
                "args": [everything_server(), "stdio"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN},
            }
        }
    }, indent=2))
    original = config.read_text()
    install.cli("member", "add", "founder")
    install.cli("agent", "add", "coder", "--owner", "founder", "--purpose", "writes code")

    app = app_for(install)
    app.go("mcp")
    app.wait_text("No MCP servers yet")
    app.button("Import from a client…")
    app.type('input[aria-label="Project folder"]', str(project))
    app.button("Find configs")
    entry = app.wait('li[data-entry="github"]')
    assert "GITHUB_PERSONAL_ACCESS_TOKEN" in entry.text
    assert TOKEN not in app.driver.page_source, "the token reached the window"
    entry.find_element(By.XPATH, ".//button[normalize-space(.)='Import']").click()
    server = app.wait('section[data-server="github"]')
    app.wait('section[data-server="github"] tr[data-tool="echo"]', timeout=60)
    app.wait_until(lambda: "Read the tools of github" in app.body(), timeout=60)
    rows = server.find_elements(By.CSS_SELECTOR, "tr[data-tool]")
    hints = [r.find_element(By.CSS_SELECTOR, ".hint").text for r in rows]
    first_writer = next(i for i, h in enumerate(hints) if h != "read-only")
    assert all(h != "read-only" for h in hints[first_writer:]), f"read-only tools come first: {hints}"
    assert TOKEN not in app.driver.page_source
    app.screenshot("mcp-servers")

    text = config.read_text()
    assert "ghp_" not in text
    assert json.loads(text)["mcpServers"]["github"]["args"] == ["mcp", "run", "--agent", "coder", "github"]
    assert install.cli_json("mcp", "show", "github")["secret_env"] == ["GITHUB_PERSONAL_ACCESS_TOKEN"]

    app.button("Undo")
    app.wait_until(lambda: "back as it was" in app.body())
    assert config.read_text() == original

    # The agent page offers the tools, read-only first, and ticking one grants it.
    app.driver.execute_script("location.hash = '#agents/coder'")
    tools = app.wait('[data-testid="mcp-tools"]')
    box = tools.find_element(By.XPATH, ".//label[.//span[normalize-space(.)='echo']]/input")
    box.click()
    app.wait_until(lambda: "github:echo" in install.cli_json("agent", "show", "coder")["scopes"])
    app.screenshot("agent-mcp-tools")


def test_wizard_offers_to_route_an_mcp_server_through_mandate(install, app_for, tmp_path):
    project = tmp_path / "coder-project"
    project.mkdir()
    config = project / ".mcp.json"
    config.write_text(json.dumps({
        "mcpServers": {
            "github": {
                "command": "node",
                "args": [everything_server(), "stdio"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN},
            }
        }
    }, indent=2))
    install.cli("member", "add", "founder")
    app = app_for(install)
    app.button("Add your first agent")
    app.wait('[data-testid="wizard"]')
    app.type('input[name="folder"]', str(project))
    app.button("Scan")
    found = app.wait('[data-testid="mcp-found"]')
    assert "GITHUB_PERSONAL_ACCESS_TOKEN" in found.text
    assert TOKEN not in app.driver.page_source
    app.button("Next")
    app.type('input[name="purpose"]', "writes code")
    app.type('input[name="name"]', "coder")
    app.button("Next")
    app.button("Next")
    app.button("Create coder")
    app.wait('[data-testid="agent-created"]')
    entry = app.wait('[data-mcp-entry="github"]')
    entry.find_element(By.XPATH, ".//button[normalize-space(.)='Import as github-mcp']").click()
    done = app.wait('[data-testid="mcp-imported"]', timeout=60)
    assert "moved into the OS keychain" in done.text
    app.wait_until(lambda: "Read " in app.wait('[data-testid="mcp-imported"]').text, timeout=60)
    app.screenshot("wizard-4-mcp-import")
    text = config.read_text()
    assert "ghp_" not in text
    assert json.loads(text)["mcpServers"]["github"]["args"] == ["mcp", "run", "--agent", "coder", "github-mcp"]
