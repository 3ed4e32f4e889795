"""Connections: add one from a preset, store its secret once, remove it with a confirmation."""

from selenium.webdriver.common.by import By

SECRET = "ghp_e2eNeverShownAgain0123456789abcdef"


def test_add_connection_set_secret_and_remove(install, app_for):
    app = app_for(install)
    app.go("connections")
    app.button("Add your first connection")
    app.button("Stripe")
    assert app.wait('input[required][data-autofocus]').get_attribute("value") == "stripe"
    app.button("Add connection")
    # Straight on to the secret, in a password field. A credential of another kind is
    # refused (issue 17: a GitHub token never becomes the Stripe key).
    field = app.wait('input[type="password"]')
    field.send_keys("ghp_" + "Gh7" * 12)
    app.button("Save to keychain")
    err = app.wait('[role="dialog"] .form-error')
    assert "'stripe' is a Stripe connection, so it cannot hold a GitHub token" in err.text, err.text
    field = app.wait('input[type="password"]')
    field.send_keys(SECRET)
    app.button("Save to keychain")
    row = app.wait('tr[data-connection="stripe"]')
    app.wait_until(lambda: "● in the keychain" in row.text)
    assert "changed just now" in row.text
    assert SECRET not in app.driver.page_source
    listed = install.cli_json("connection", "list")
    stripe = next(c for c in listed if c["name"] == "stripe")
    assert stripe["has_secret"] is True

    app.button("Remove")
    app.wait('[role="dialog"]')
    app.button("Remove connection")
    app.wait_until(lambda: not app.driver.find_elements(By.CSS_SELECTOR, 'tr[data-connection="stripe"]'))
    assert all(c["name"] != "stripe" for c in install.cli_json("connection", "list"))


def test_presets_set_the_credential_placement_and_limits_show_on_the_agent(seeded, app_for):
    app = app_for(seeded)
    app.go("connections")
    # Anthropic's preset sends the key as an x-api-key header, not a bearer token.
    app.button("+ Add connection")
    app.button("Anthropic")
    app.button("Add connection")
    app.wait('input[type="password"]')
    app.button("Cancel")
    row = app.wait('tr[data-connection="anthropic"]')
    app.wait_until(lambda: "x-api-key header" in row.text, message=row.text)
    broker = seeded.cli_json("connection", "show", "anthropic")["broker"]
    assert broker["auth"] == {"kind": "header", "name": "x-api-key"}
    assert broker["preset"] == "anthropic"
    assert {a["name"]: a["cost"] for a in broker["actions"]}["messages"] == 10

    # Limits: a bad value is explained; good ones are saved and shown.
    github = app.wait('tr[data-connection="github"]')
    github.find_element(By.XPATH, ".//button[normalize-space(.)='Limits…']").click()
    app.type('input[name="rate"]', "0")
    app.button("Save limits")
    assert "whole number of at least 1" in app.wait('[role="dialog"] .form-error').text
    app.type('input[name="rate"]', "60")
    app.type('input[name="budget"]', "500")
    app.button("Save limits")
    app.wait_until(lambda: "500 units/day per agent" in app.wait('tr[data-connection="github"] [data-testid="limits"]').text)
    broker = seeded.cli_json("connection", "show", "github")["broker"]
    assert (broker["rate_per_minute"], broker["daily_budget"]) == (60, 500)

    # The agent's page shows today's calls against that budget.
    app.go("agents")
    app.click('tr[data-agent="billing-report-agent"] td:nth-child(2)')
    usage = app.wait('[data-testid="usage"] tr[data-connection="github"]')
    assert "0 of 500 units · 60/min" in usage.text, usage.text


def test_trust_floor_is_changed_in_settings(seeded, app_for):
    from selenium.webdriver.support.ui import Select

    assert seeded.cli_json("connection", "show", "github")["trust_floor"] == "PENDING"
    app = app_for(seeded)
    app.go("settings")
    Select(app.wait('select[name="floor-github"]')).select_by_value("TRUSTED")
    app.wait_until(lambda: "agents below TRUSTED get no token" in app.wait('[data-testid="trust-floors"]').text)
    assert seeded.cli_json("connection", "show", "github")["trust_floor"] == "TRUSTED"
    # The PENDING agent is refused a github token from now on, with the reason.
    out = seeded.cli("token", "billing-report-agent", "--aud", "github", check=False)
    assert out.returncode == 9, out.stderr
    assert "TRUSTED" in out.stderr
