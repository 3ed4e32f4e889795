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
    # Straight on to the secret, in a password field.
    field = app.wait('input[type="password"]')
    field.send_keys(SECRET)
    app.button("Save to keychain")
    row = app.wait('tr[data-connection="stripe"]')
    app.wait_until(lambda: "● set" in row.text)
    assert SECRET not in app.driver.page_source
    listed = install.cli_json("connection", "list")
    stripe = next(c for c in listed if c["name"] == "stripe")
    assert stripe["has_secret"] is True

    app.button("Remove")
    app.wait('[role="dialog"]')
    app.button("Remove connection")
    app.wait_until(lambda: not app.driver.find_elements(By.CSS_SELECTOR, 'tr[data-connection="stripe"]'))
    assert all(c["name"] != "stripe" for c in install.cli_json("connection", "list"))
