"""The real window lists the registered agents."""


def test_window_lists_registered_agents(seeded, app_for):
    app = app_for(seeded)
    body = app.wait_text("billing-report-agent")
    assert "founder" in body
    assert "PENDING" in body
    app.screenshot("agents")


def test_empty_installation_says_what_to_do(install, app_for):
    app = app_for(install)
    body = app.wait_text("No agents yet")
    assert "mandate agent add" in body or "wizard" in body.lower()
