"""Every screen renders with real data and without an error banner; each is saved as a
screenshot (MANDATE_E2E_SCREENSHOTS) for docs/screenshots/."""

from selenium.webdriver.common.by import By


def rich(install):
    install.cli("member", "add", "founder", "--email", "founder@example.com")
    # The founder's CLI: changes below name them, as the app's do.
    install.cli("member", "use", "founder")
    install.cli("member", "add", "maria")
    install.cli(
        "connection", "add", "github", "--base-url", "https://api.github.com",
        "--action", "repo.read=GET:/repos/**", "--action", "issues.write=POST:/repos/*/*/issues",
    )
    install.cli(
        "connection", "add", "stripe", "--base-url", "https://api.stripe.com",
        "--action", "invoices.read=GET:/v1/invoices/**",
    )
    install.cli(
        "agent", "add", "billing-report-agent", "--owner", "founder",
        "--purpose", "monthly billing report", "--scope", "stripe:invoices.read",
        "--scope", "github:repo.read", "--generate-key",
    )
    install.cli(
        "agent", "add", "release-notes-agent", "--owner", "maria",
        "--purpose", "drafts release notes from merged pull requests",
        "--scope", "github:repo.read", "--scope", "github:issues.write", "--generate-key",
    )
    install.cli(
        "agent", "add", "support-triage-agent", "--owner", "maria",
        "--purpose", "labels incoming support issues", "--scope", "github:repo.read",
        "--generate-key",
    )
    install.cli("agent", "suspend", "support-triage-agent", "--reason", "labelled spam as urgent")
    install.cli(
        "agent", "add", "old-scraper-agent", "--owner", "founder",
        "--purpose", "scraped competitor pricing", "--generate-key",
    )
    install.cli("agent", "revoke", "old-scraper-agent", "--reason", "no longer needed")
    return install


def no_error(app):
    assert not app.driver.find_elements(By.CSS_SELECTOR, ".banner.bad"), app.body()


def test_every_screen_renders(install, app_for):
    rich(install)
    app = app_for(install)
    app.wait_until(lambda: "Endpoint on :" in app.wait('[data-testid="endpoint-status"]').text)
    install.cli("token", "billing-report-agent", "--aud", "stripe")
    install.cli("token", "release-notes-agent", "--aud", "github")
    app.wait('[data-testid="countdown"]')
    no_error(app)
    app.screenshot("agents")

    app.click('tr[data-agent="billing-report-agent"] td:nth-child(2)')
    app.wait('[data-testid="token-countdown"]')
    app.wait('[data-testid="agent-timeline"] [data-seq]')
    no_error(app)
    app.screenshot("agent-detail")

    app.go("audit")
    app.wait('[data-testid="audit-list"] [data-seq]')
    app.wait_until(lambda: "Verified:" in app.wait('[data-testid="verify-banner"]').text)
    app.click('[data-testid="audit-list"] [data-action="agent.revoked"]')
    app.wait('aside.detail')
    no_error(app)
    app.screenshot("audit")

    app.go("connections")
    app.wait('tr[data-connection="github"]')
    no_error(app)
    app.screenshot("connections")

    app.go("settings")
    app.wait_until(lambda: "Agents get tokens at" in app.wait('[data-testid="endpoint-line"]').text)
    app.type('input[maxlength="120"]', "Example Robotics Ltd")
    app.button("Save")
    app.wait_text("Reports now say")
    no_error(app)
    app.screenshot("settings")
