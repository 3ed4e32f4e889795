"""People in the real window (issue 17 §3 and §6): the first-run prompt asks who is using
Mandate and every change after it names them; Settings changes the person; the Audit screen
finds their events; a revoked agent's page shows one red banner with who revoked it, when and
why, its keys as destroyed and no trust override."""

import subprocess
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select


def actor_of_last(install, action):
    """(kind, name) of the newest event with `action`, read with sqlite3 (not our code)."""
    out = subprocess.run(
        ["sqlite3", f"{install.data_dir}/mandate.db",
         "SELECT (CAST(body AS TEXT) ->> '$.actor.kind') || ' ' || "
         "(CAST(body AS TEXT) ->> '$.actor.name') FROM audit_events "
         f"WHERE action = '{action}' ORDER BY seq DESC LIMIT 1"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    return tuple(out.split(" ", 1)) if out else None


def test_first_run_asks_who_is_using_mandate_and_every_change_names_them(install, app_for):
    app = app_for(install, person=None)
    prompt = app.wait('[data-testid="first-run"]')
    assert "Who is using Mandate?" in app.body()
    # Nothing can be done behind it: the prompt cannot be dismissed.
    app.driver.find_element(By.TAG_NAME, "body").send_keys("\ue00c")  # Escape
    app.wait('[data-testid="first-run"]')
    app.type('input[name="person-name"]', "Ann Smith")
    app.wait_until(lambda: "ann-smith" in app.wait('[data-testid="person-handle"]').text)
    app.type('input[name="person-email"]', "ann@example.com")
    app.type('input[name="organisation"]', "Example Robotics Ltd")
    time.sleep(0.5)  # let the window paint what was typed before the screenshot
    app.screenshot("first-run")
    app.button("Continue")
    app.wait_until(
        lambda: not app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="first-run"]'),
        message="the first-run prompt stayed after an answer",
    )
    assert app.wait('[data-testid="current-person"]').text == "You: ann-smith"
    assert prompt is not None

    # The choice is the core's: a member with that email, remembered for this OS login (the
    # CLI of the same login agrees), the organisation on reports.
    ann = next(m for m in install.cli_json("member", "list") if m["name"] == "ann-smith")
    assert ann["email"] == "ann@example.com"
    assert install.cli_json("member", "whoami")["actor"]["name"] == "ann-smith"
    assert install.cli("org").stdout.strip() == "Example Robotics Ltd"
    assert actor_of_last(install, "person.chosen") == ("member", "ann-smith")
    assert actor_of_last(install, "settings.organisation_set") == ("member", "ann-smith")

    # A change made in the window names her.
    app.go("connections")
    app.button("Add your first connection")
    app.button("Stripe")
    app.button("Add connection")
    app.wait('input[type="password"]')
    app.button("Cancel")
    assert actor_of_last(install, "connection.added") == ("member", "ann-smith")

    # The Audit screen's member filter finds her events.
    app.go("audit")
    Select(app.wait('select[aria-label="Filter by team member"]')).select_by_value("ann-smith")
    app.wait_until(
        lambda: len(app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="audit-list"] [data-seq]')) >= 3,
        message="the member filter found none of her events",
    )
    app.screenshot("audit-by-member")

    # Settings says who changes name, and changes it.
    app.go("settings")
    line = app.wait('[data-testid="person-line"]').text
    assert "ann-smith (ann@example.com)" in line, line
    app.button("Change who I am…")
    app.click('input[name="person"][value=""]')
    app.type('input[name="person-name"]', "bob")
    time.sleep(0.5)
    app.screenshot("settings-you")
    app.button("Save")
    app.wait_until(lambda: "recorded as bob" in app.wait('[data-testid="person-line"]').text)
    assert app.wait('[data-testid="current-person"]').text == "You: bob"
    assert install.cli_json("member", "whoami")["actor"]["name"] == "bob"

    # Opened again, the window remembers the person and does not ask.
    app.close()
    again = app_for(install, person=None)
    assert again.wait('[data-testid="current-person"]').text == "You: bob"
    assert not again.driver.find_elements(By.CSS_SELECTOR, '[data-testid="first-run"]')


def test_a_revoked_agent_shows_one_red_banner_destroyed_keys_and_no_override(seeded, app_for):
    app = app_for(seeded)
    app.wait('tr[data-agent="billing-report-agent"]')
    app.click('tr[data-agent="billing-report-agent"] td:nth-child(2)')
    app.wait("h1.mono-title")
    app.button("Revoke…")
    app.wait('[role="dialog"]')
    app.type('textarea[name="reason"]', "key leaked in a log")
    app.button("Revoke agent")
    banner = app.wait('[data-testid="status-banner"]')
    app.wait_until(lambda: "Revoked by founder on " in banner.text)
    # One banner, red; no green one over it; the reason once on the page outside the timeline.
    banners = app.driver.find_elements(By.CSS_SELECTOR, "main .banner")
    classes = [b.get_attribute("class").split() for b in banners]
    assert len(classes) == 1 and "bad" in classes[0], classes
    timeline = app.wait('[data-testid="agent-timeline"]').text
    assert app.body().count("key leaked in a log") - timeline.count("key leaked in a log") == 1
    # Its key was deleted from the keychain: never shown as active.
    states = [e.text for e in app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="key-state"]')]
    assert states == ["destroyed"], states
    # No trust override, and no actions that a revoked agent refuses.
    assert not app.driver.find_elements(By.CSS_SELECTOR, 'select[aria-label="Trust override"]')
    assert "its trust can no longer be set by hand" in app.wait('[data-testid="no-override"]').text
    assert not app.driver.find_elements(By.XPATH, "//button[normalize-space(.)='Revoke…']")
    app.screenshot("agent-revoked")

    # The same page after a restart (the revocation made by the CLI reads the same).
    app.close()
    again = app_for(seeded)
    again.wait('tr[data-agent="billing-report-agent"]')
    again.click('tr[data-agent="billing-report-agent"] td:nth-child(2)')
    assert again.wait('[data-testid="status-banner"]').text.startswith("Revoked by founder on ")


def test_the_wizard_checks_the_owner_on_the_issue_step_and_takes_an_email(seeded, app_for):
    """An owner typed as an email failed two steps later, at Create."""
    app = app_for(seeded)
    app.button("+ Add agent")
    app.button("Skip")
    app.type('input[name="purpose"]', "weekly digest")
    app.type('input[name="name"]', "weekly-digest-agent")
    app.type('input[name="owner"]', "Ann Smith")
    problem = app.wait('[data-testid="owner-problem"]')
    assert "not a valid member name" in problem.text, problem.text
    app.button("Next")
    assert "not a valid member name" in app.wait(".why").text
    app.type('input[name="owner"]', "ann.smith@example.com")
    plan = app.wait('[data-testid="owner-plan"]')
    app.wait_until(lambda: "ann-smith" in plan.text)
    assert "(ann.smith@example.com) will be added as a team member" in plan.text
    app.button("Next")
    app.wait_text("What may it do?")
    # Checking wrote nothing: the member is added only when the agent is created.
    assert [m["name"] for m in seeded.cli_json("member", "list")] == ["founder"]
    app.button("Next")
    app.button("Create weekly-digest-agent")
    app.wait('[data-testid="agent-created"]')
    ann = next(m for m in seeded.cli_json("member", "list") if m["name"] == "ann-smith")
    assert ann["email"] == "ann.smith@example.com"
    assert seeded.cli_json("agent", "show", "weekly-digest-agent")["owner"] == "ann-smith"
