"""The migration wizard in the real window: a project with planted fake credentials of every
known format is scanned (masked values only), an agent is created and scoped through the four
steps, one finding moves into the real keychain (its line rewritten), and the wizard's test
token verifies through the endpoint's JWKS with PyJWT, a stock JWT library."""

import json
import os
import urllib.request

import jwt
from selenium.webdriver.common.by import By

AGENT = "billing-report-agent"


def fake_credentials():
    """One fake value per known format, built at run time (no literal looks real)."""
    return {
        "GITHUB_TOKEN": "ghp_" + "Ab1" * 12,
        "GITHUB_PAT": "github_pat_" + "A" * 22 + "_" + "b" * 59,
        "SLACK_BOT_TOKEN": "xoxb-123456789012-" + "x" * 24,
        "STRIPE_KEY": "sk_live_" + "9" * 24,
        "STRIPE_RESTRICTED": "rk_live_" + "Z" * 30,
        "OPENAI_API_KEY": "sk-proj-" + "o" * 40,
        "ANTHROPIC_API_KEY": "sk-ant-api03-" + "a" * 40,
        "AWS_ACCESS_KEY_ID": "AKIA" + "ABCDEFGHIJKLMNOP",
        "GOOGLE_API_KEY": "AIza" + "g" * 35,
        "DATABASE_URL": "postgres://app:" + "pw" * 6 + "@db.internal:5432/app",
    }


def plant(root):
    creds = fake_credentials()
    os.makedirs(os.path.join(root, "scripts"))
    with open(os.path.join(root, "main.py"), "w") as f:
        f.write("print('monthly billing report')\n")
    with open(os.path.join(root, ".env"), "w") as f:
        for k, v in creds.items():
            f.write(f"{k}={v}\n")
    with open(os.path.join(root, "scripts", "deploy_key"), "w") as f:
        f.write("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
    return creds


def test_wizard_takes_an_agent_from_a_borrowed_key_to_its_own_identity(install, app_for, tmp_path):
    install.cli("member", "add", "founder")
    project = str(tmp_path / "billing-agent")
    creds = plant(project)
    app = app_for(install)
    app.wait_until(
        lambda: "Endpoint on :" in app.wait('[data-testid="endpoint-status"]').text,
        message="the endpoint did not start with the window",
    )

    # The welcome leads into the wizard.
    app.button("Add your first agent")
    app.wait('[data-testid="wizard"]')
    app.screenshot("wizard-1-inventory-empty")

    # 1. Inventory: scan the planted folder. Masked values only, every format found.
    app.type('input[name="folder"]', project)
    app.button("Scan")
    result = app.wait('[data-testid="scan-result"]')
    app.wait_until(lambda: "11 credentials" in result.text, message=result.text)
    body = app.body()
    for name, value in creds.items():
        assert value not in body, f"{name} shown in full"
    rows = app.driver.find_elements(By.CSS_SELECTOR, "[data-finding]")
    assert {r.get_attribute("data-finding") for r in rows} >= {".env:1", ".env:10", "scripts/deploy_key:1"}
    kinds = result.text
    for label in ["GitHub", "Slack", "Stripe", "OpenAI", "Anthropic", "AWS", "Google", "Database", "Private key"]:
        assert label in kinds, f"{label} missing from {kinds}"
    # The surfaces the findings point at are ticked for the person.
    checked = [
        e.get_attribute("value")
        for e in app.driver.find_elements(By.CSS_SELECTOR, 'input[name="surface"]')
        if e.is_selected()
    ]
    assert {"code_host", "billing", "chat", "llm", "database", "cloud"} <= set(checked), checked
    # Keep it to GitHub for this agent.
    for s in checked:
        if s != "code_host":
            app.click(f'input[name="surface"][value="{s}"]')
    app.screenshot("wizard-1-inventory")
    app.button("Next")

    # 2. Issue: the name is suggested from the purpose; a person's name is flagged.
    app.type('input[name="purpose"]', "monthly billing report")
    assert app.wait('input[name="name"]').get_attribute("value") == "monthly-billing-report-agent"
    app.type('input[name="name"]', "sarah")
    app.wait('[data-testid="person-warning"]')
    app.type('input[name="name"]', AGENT)
    assert app.wait('input[name="owner"]').get_attribute("value") == "founder"
    app.screenshot("wizard-2-issue")
    app.button("Next")

    # 3. Scope: GitHub from its preset. Only the narrow read of its own account is pre-ticked
    # (issue 17: no broad reads of private data by default); the workflow adds repo.read.
    card = app.wait('[data-connection="github"]')
    assert "new, from the github preset" in card.text
    ticked = [
        e.get_attribute("value")
        for e in card.find_elements(By.CSS_SELECTOR, 'input[type="checkbox"]')
        if e.is_selected()
    ]
    assert ticked == ["github:user.read"], ticked
    app.click('input[value="github:repo.read"]')
    radius = app.wait('[data-testid="blast-radius"]').text
    app.wait_until(lambda: "repo.read" in app.wait('[data-testid="blast-radius"]').text)
    radius = app.wait('[data-testid="blast-radius"]').text
    assert "Cannot change anything: every action is read-only." in radius
    assert "at most 15 minutes" in radius
    app.screenshot("wizard-3-scope")
    app.button("Next")

    # 4. Rotate: 15 minutes, a key generated into the keychain; create; move one finding.
    assert app.wait('select[name="ttl"]').get_attribute("value") == "900"
    app.screenshot("wizard-4-rotate")
    app.button(f"Create {AGENT}")
    app.wait('[data-testid="agent-created"]')
    shown = install.cli_json("agent", "show", AGENT)
    assert shown["status"] == "active"
    assert sorted(shown["scopes"]) == ["github:repo.read", "github:user.read"]
    assert shown["max_token_ttl_secs"] == 900
    assert shown["keys"][0]["origin"] == "keychain"
    assert install.cli_json("connection", "show", "github")["has_secret"] is False

    github_row = app.wait('.finding[data-finding=".env:1"]')
    github_row.find_element(By.XPATH, ".//button[normalize-space(.)='Move to keychain']").click()
    moved = app.wait('.finding[data-finding=".env:1"] [data-testid="moved"]')
    assert "github" in moved.text
    app.screenshot("wizard-4-moved")
    with open(os.path.join(project, ".env")) as f:
        env = f.read()
    assert creds["GITHUB_TOKEN"] not in env
    assert env.splitlines()[0].startswith("# GITHUB_TOKEN moved to the OS keychain by Mandate")
    assert f"mandate exec {AGENT}" in env.splitlines()[0]
    assert creds["STRIPE_KEY"] in env, "other lines stay as they were"
    assert install.cli_json("connection", "show", "github")["has_secret"] is True
    app.button("Next: prove it works")

    # 5. Proof: a real token from the endpoint, its claims, and it verifies through the JWKS.
    claims = app.wait('[data-testid="claims"]')
    assert AGENT in claims.find_element(By.CSS_SELECTOR, '[data-claim="sub"]').text
    app.click("details summary")
    token = app.wait('[data-testid="raw-token"]').get_attribute("value")
    port = install.env["MANDATE_PORT"]
    issuer = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{issuer}/.well-known/oauth-authorization-server") as r:
        meta = json.load(r)
    jwks = jwt.PyJWKClient(meta["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(token)
    decoded = jwt.decode(
        token, key.key, algorithms=["EdDSA"], issuer=meta["issuer"],
        options={"verify_aud": False},
    )
    assert decoded["sub"] == AGENT
    assert set(decoded["scope"].split()) == {"github:repo.read", "github:user.read"}
    assert decoded["exp"] - decoded["iat"] <= 900
    snippets = app.body()
    assert f"mandate token {AGENT}" in snippets
    # The program the scan found, and a real endpoint of the preset (issue 17 §6).
    assert f"mandate exec {AGENT} -- python3 main.py" in snippets
    assert "agent.py" not in snippets
    assert f"{issuer}/proxy/github/user" in snippets
    assert f"{issuer}/proxy/github/repos\n" not in snippets + "\n"
    # Its first audit events: created, and the wizard's token.
    timeline = app.wait('[data-testid="agent-timeline"]')
    app.wait_until(lambda: timeline.find_elements(By.CSS_SELECTOR, '[data-action="token.issued"]'))
    assert timeline.find_elements(By.CSS_SELECTOR, '[data-action="agent.created"]')
    app.screenshot("wizard-5-proof")

    # Done: the agent's page, listed with its trust state.
    app.button(f"Open {AGENT}")
    assert app.wait("h1.mono-title").text == AGENT
    assert install.cli("audit", "verify").returncode == 0


def test_wizard_refuses_bad_input_and_writes_nothing(install, app_for):
    install.cli("member", "add", "founder")
    install.cli(
        "agent", "add", "taken-agent", "--owner", "founder", "--purpose", "x", "--generate-key",
    )
    app = app_for(install)
    app.button("+ Add agent")
    app.type('input[name="folder"]', "/nonexistent/folder")
    app.button("Scan")
    err = app.wait('.form-error')
    assert "is not a folder" in err.text
    app.button("Skip")
    app.type('input[name="purpose"]', "weekly digest")
    app.type('input[name="name"]', "Weekly Digest")
    app.button("Next")
    assert "lowercase letter" in app.wait(".why").text
    app.type('input[name="name"]', "taken-agent")
    app.button("Next")
    assert "no other agent" in app.wait(".why").text
    app.button("Cancel")
    app.wait('tr[data-agent="taken-agent"]')
    names = [a["name"] for a in install.cli_json("agent", "list")]
    assert names == ["taken-agent"]


FOUNDER_TOKEN = "ghp_" + "F0underOwnT0ken" * 2 + "000001"


def test_the_walk_with_every_default_loses_no_credential(install, app_for, tmp_path):
    """Issue 17 §1: the founder's GitHub connection already holds their token; the agent's
    .env holds a GitHub token, an OpenAI key, a database URL and AWS's documented example key.
    Walking the wizard accepting every default ends with every real secret in its file or in
    the keychain under a connection of its own kind; a replacement asks first (both values
    masked, the agent that uses it named) and every move can be undone from the same screen."""
    assert len(FOUNDER_TOKEN) == 40
    agent = "monthly-billing-report-agent"  # the name suggested from the purpose
    install.cli("member", "add", "founder")
    install.cli("connection", "add", "github", "--preset", "github")
    install.cli("connection", "set-secret", "github", input=FOUNDER_TOKEN)
    project = str(tmp_path / "billing-agent")
    os.makedirs(project)
    github = "ghp_" + "Wk7" * 12
    openai = "sk-proj-" + "0pn" * 16
    db = "postgres://app:" + "Pg9x" * 4 + "@db.internal:5432/app"
    env_path = os.path.join(project, ".env")
    original = (
        f"GITHUB_TOKEN={github}\nOPENAI_API_KEY={openai}\nDATABASE_URL={db}\n"
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
    )
    with open(env_path, "w") as f:
        f.write(original)
    with open(os.path.join(project, "main.py"), "w") as f:
        f.write("print('report')\n")

    def dotenv():
        with open(env_path) as f:
            return f.read()

    app = app_for(install)
    app.wait_until(
        lambda: "Endpoint on :" in app.wait('[data-testid="endpoint-status"]').text,
        message="the endpoint did not start with the window",
    )
    app.button("Add your first agent")

    # 1. Inventory: three findings; AWS's documented example is not offered.
    app.type('input[name="folder"]', project)
    app.button("Scan")
    result = app.wait('[data-testid="scan-result"]')
    app.wait_until(lambda: "3 credentials" in result.text, message=result.text)
    assert "AWS" not in result.text and "AKIA" not in result.text
    app.button("Next")

    # 2. Issue: the suggested name and the only member as owner.
    app.type('input[name="purpose"]', "monthly billing report")
    assert app.wait('input[name="name"]').get_attribute("value") == agent
    app.button("Next")

    # 3. Scope: the ticked Database is still here, as a database connection, not pre-ticked;
    # only narrow reads are.
    db_card = app.wait('[data-connection="app"][data-kind="database"]')
    assert "new database connection" in db_card.text
    assert "holds it while it runs" in db_card.text
    ticked = sorted(
        e.get_attribute("value")
        for e in app.driver.find_elements(By.CSS_SELECTOR, '.target input[type="checkbox"]')
        if e.is_selected()
    )
    assert ticked == ["github:user.read", "openai:models.read"], ticked
    app.screenshot("wizard-3-scope-database")
    app.button("Next")

    # 4. Rotate: create with the defaults; the subtitle no longer says nothing is saved.
    app.button(f"Create {agent}")
    app.wait('[data-testid="agent-created"]')
    app.wait_until(lambda: "is saved" in app.wait('[data-testid="wizard-sub"]').text)
    assert "Nothing is saved" not in app.wait('[data-testid="wizard-sub"]').text

    def card(line):
        return app.wait(f'.finding[data-finding=".env:{line}"]')

    def press(c, label):
        # Into the middle of the view: the wizard's footer is sticky and would cover a button
        # scrolled to the bottom edge.
        b = c.find_element(By.XPATH, f".//button[normalize-space(.)='{label}']")
        app.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", b)
        b.click()

    def move(line):
        c = card(line)
        app.wait_until(
            lambda: c.find_element(By.CSS_SELECTOR, 'select[name="move-to"]').is_enabled()
        )
        press(c, "Move to keychain")

    # Every default: the GitHub token to the GitHub connection, which holds the founder's
    # token, so it asks; the default answer keeps the current one.
    sel = card(1).find_element(By.CSS_SELECTOR, 'select[name="move-to"]')
    app.wait_until(lambda: sel.is_enabled())
    assert sel.get_attribute("value") == "github"
    move(1)
    confirm = app.wait('[data-testid="replace-confirm"]')
    assert "ghp_••••••••0001" in confirm.find_element(By.CSS_SELECTOR, '[data-testid="current"]').text
    assert "ghp_••••••••7Wk7" in confirm.find_element(By.CSS_SELECTOR, '[data-testid="incoming"]').text
    assert f"{agent} (github:user.read)" in confirm.text
    assert FOUNDER_TOKEN not in app.body() and github not in app.body()
    app.screenshot("wizard-4-replace-confirm")
    app.button("Keep the current one")
    # The OpenAI key to the new openai connection; the database URL to a new database
    # connection (never to github).
    move(2)
    app.wait('.finding[data-finding=".env:2"] [data-testid="moved"]')
    sel = card(3).find_element(By.CSS_SELECTOR, 'select[name="move-to"]')
    options = [o.get_attribute("value") for o in sel.find_elements(By.TAG_NAME, "option")]
    assert "github" not in options and "openai" not in options, options
    assert sel.get_attribute("value") == "app"
    move(3)
    moved_db = app.wait('.finding[data-finding=".env:3"] [data-testid="moved"]')
    assert "a new database connection" in moved_db.text
    hold = app.wait('.finding[data-finding=".env:3"] [data-testid="db-hold"]').text
    assert "holds this URL while it runs" in hold and "no app:connect scope" in hold
    app.screenshot("wizard-4-moved")

    # Every real secret is in its file or in the real keychain under its own connection.
    text = dotenv()
    assert github in text
    assert install.connection_secret("github") == FOUNDER_TOKEN
    assert openai not in text and install.connection_secret("openai") == openai
    assert db not in text and install.connection_secret("app") == db
    assert install.cli_json("connection", "show", "app")["kind"] == "database"
    assert "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE" in text

    # Undo from the same screen: the line comes back, the connection has no secret again.
    press(card(3), "Undo")
    app.wait('.finding[data-finding=".env:3"] [data-testid="undone"]')
    assert f"DATABASE_URL={db}" in dotenv()
    assert install.connection_secret("app") is None

    # A confirmed replacement, then its undo: the founder's token comes back.
    move(1)
    app.wait('[data-testid="replace-confirm"]')
    app.button("Replace it")
    replaced = app.wait('.finding[data-finding=".env:1"] [data-testid="moved"]')
    assert "replacing the one it held" in replaced.text
    assert install.connection_secret("github") == github
    assert FOUNDER_TOKEN in install.keychain().values(), "kept for the undo"
    press(card(1), "Undo")
    app.wait('.finding[data-finding=".env:1"] [data-testid="undone"]')
    assert install.connection_secret("github") == FOUNDER_TOKEN
    assert FOUNDER_TOKEN not in [
        v for k, v in install.keychain().items() if "/moved-previous/" in k
    ]
    assert github in dotenv()

    # The trail names the replacement and the undo, and holds no value.
    app.go("audit")
    # textContent: WebDriver's visible text leaves out a description cut with an ellipsis.
    for action, words in [
        ("connection.secret_replaced", "replaced the secret of github"),
        ("credential.move_undone", "undid a credential move into github"),
    ]:
        row = app.wait(f'[data-testid="audit-list"] [data-action="{action}"]')
        assert words in row.get_attribute("textContent"), row.get_attribute("textContent")
    events = install.cli("audit", "verify")
    assert events.returncode == 0
    body = app.body()
    for v in (FOUNDER_TOKEN, github, openai, db):
        assert v not in body

    # The Connections screen tells the truth: a move that replaced a secret says so (not just
    # "set"), a database says the program holds its URL, and the move can be undone there.
    install.cli("scan", project, "--move", ".env:1", "--to", "github", "--replace")
    app.go("connections")
    row = app.wait('tr[data-connection="github"]')
    app.wait_until(lambda: "it replaced the previous secret" in row.text, message=row.text)
    assert "Moved in from .env:1" in row.text
    assert "holds it while it runs" in app.wait('tr[data-connection="app"]').text
    app.screenshot("connections-after-move")
    undo = row.find_element(By.XPATH, ".//button[normalize-space(.)='Undo']")
    app.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", undo)
    undo.click()
    app.wait_text("Undone.")
    assert install.connection_secret("github") == FOUNDER_TOKEN
    assert github in dotenv()

    # The agent's page says plainly that its program holds the database URL once granted.
    install.cli("agent", "edit", agent, "--add-scope", "app:connect")
    app.go("agents")
    app.click(f'tr[data-agent="{agent}"] td:nth-child(2)')
    hold = app.wait('[data-testid="agent-db-hold"]').text
    assert "the URL of app as DATABASE_URL" in hold and "holds that URL while it runs" in hold
    app.screenshot("agent-detail-database")
