"""The real window lists the registered agents, and a new installation explains itself."""


def test_window_lists_registered_agents(seeded, app_for):
    app = app_for(seeded)
    body = app.wait_text("billing-report-agent")
    assert "founder" in body
    assert "PENDING" in body
    assert "none yet" in body
    # The status, trust, token and activity cells show their whole text in a 1280-pixel window
    # (the text of a clipped cell is still in the page, so measure it).
    clipped = app.driver.execute_script(
        "return [...document.querySelectorAll('tr.row td:nth-child(n+4)')]"
        ".filter((td) => td.scrollWidth > td.clientWidth).map((td) => td.textContent.trim())"
    )
    assert clipped == [], f"cells cut short: {clipped}"


def test_empty_installation_welcomes_and_points_at_the_first_agent(install, app_for):
    app = app_for(install)
    body = app.wait_text("Welcome to Mandate")
    assert "Add your first agent" in body


def test_search_and_filters_narrow_the_table(seeded, app_for):
    seeded.cli(
        "agent", "add", "support-triage-agent", "--owner", "founder",
        "--purpose", "sorts the support inbox", "--generate-key",
    )
    seeded.cli("agent", "suspend", "support-triage-agent", "--reason", "paused for review")
    app = app_for(seeded)
    app.wait('tr[data-agent="support-triage-agent"]')
    rows = lambda: len(app.driver.find_elements("css selector", "tr[data-agent]"))  # noqa: E731
    app.type('input[aria-label="Search agents"]', "billing")
    app.wait_until(lambda: rows() == 1, message="search did not narrow the table")
    app.type('input[aria-label="Search agents"]', "")
    app.wait_until(lambda: rows() == 2)
    from selenium.webdriver.support.ui import Select

    Select(app.wait('select[aria-label="Filter by status"]')).select_by_value("suspended")
    app.wait_until(lambda: rows() == 1)
    assert "support-triage-agent" in app.wait('tr[data-agent]').text


def test_trust_override_is_set_by_hand_with_a_reason_and_audited(seeded, app_for):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    app = app_for(seeded)
    app.click('tr[data-agent="billing-report-agent"] td:nth-child(2)')
    app.wait("h1.mono-title")
    Select(app.wait('select[aria-label="Trust override"]')).select_by_value("UNTRUSTED")
    app.type('input[aria-label="Trust override reason"]', "leaked key under review")
    app.button("Apply")
    app.wait_text("Trust set by hand to UNTRUSTED")
    assert "leaked key under review" in app.body()
    app.wait_until(
        lambda: app.driver.find_elements(
            By.CSS_SELECTOR, '[data-testid="agent-timeline"] [data-action="agent.trust_overridden"]'
        ),
        message="the override is not in the agent's own timeline",
    )


def test_delegation_is_added_and_ended_from_the_agent_page(seeded, app_for):
    from selenium.webdriver.support.ui import Select

    app = app_for(seeded)
    app.click('tr[data-agent="billing-report-agent"] td:nth-child(2)')
    app.button("Delegate…")
    app.button("Delegate")
    # The only team member is chosen already; the missing scope is named.
    assert "at least one scope" in app.wait('[role="dialog"] .form-error').text
    assert Select(app.wait('select[name="member"]')).first_selected_option.get_attribute("value") == "founder"
    app.click('input[name="delegate-scope"][value="github:repo.read"]')
    app.type('input[name="task"]', "Q4 board report")
    app.button("Delegate")
    app.wait_text("may now act for founder")
    listed = seeded.cli_json("delegation", "list")
    assert [(d["member"], d["task"], d["active"]) for d in listed] == [("founder", "Q4 board report", True)]
    app.wait('[data-testid="delegations"] [data-delegation]')
    app.button("End…")
    app.type('textarea[name="end-reason"]', "report delivered")
    app.button("End delegation")
    app.wait_text("stop working now")
    assert seeded.cli_json("delegation", "list")[0]["active"] is False


def test_long_list_renders_only_rows_in_view_and_keys_move_through_all(seeded, app_for):
    from selenium.webdriver.common.keys import Keys

    for i in range(40):
        seeded.cli("agent", "add", f"worker-{i:02d}", "--owner", "founder", "--purpose", f"worker {i}")
    app = app_for(seeded)
    app.wait('tr[data-agent="billing-report-agent"]')
    rows = lambda: app.driver.execute_script(  # noqa: E731
        "return [...document.querySelectorAll('tr[data-agent]')].map(r => r.dataset.agent)"
    )
    assert "41 of 41" in app.body()
    assert 0 < len(rows()) < 41, rows()
    assert "worker-39" not in rows()

    focused = lambda: app.driver.execute_script(  # noqa: E731
        "return document.activeElement.closest('tr')?.dataset.agent ?? null"
    )
    app.driver.execute_script("document.querySelector('tr[data-agent] a.name').focus()")
    assert focused() == "billing-report-agent"
    active = lambda: app.driver.switch_to.active_element  # noqa: E731
    active().send_keys(Keys.ARROW_DOWN)
    app.wait_until(lambda: focused() == "worker-00")
    # End reaches a row that did not exist in the page until then.
    active().send_keys(Keys.END)
    app.wait_until(lambda: focused() == "worker-39", message="End did not reach the last agent")
    assert "billing-report-agent" not in rows()
    active().send_keys(Keys.HOME)
    app.wait_until(lambda: focused() == "billing-report-agent")
    # Sorting still covers every agent, not only those rendered.
    app.click('th button.sort')
    app.wait_until(lambda: rows()[0] == "worker-39", message="sorting descending did not reorder")
