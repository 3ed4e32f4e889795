"""The Audit screen's member and time-range filters, on events the CLI wrote as two members."""

from selenium.webdriver.support.ui import Select

LIST = '[data-testid="audit-list"]'


def set_date(app, label, value):
    # WebDriver cannot type into WebKit's date picker reliably: set the value and send the
    # input event the binding listens to.
    el = app.wait(f'input[aria-label="{label}"]')
    app.driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
        el, value,
    )


def shown(app):
    """(seq, text) of the rows in view (textContent: WebDriver's visible text leaves out the
    description, which is cut with an ellipsis)."""
    # One script, so a list re-rendering in between cannot leave stale elements.
    return [tuple(r) for r in app.driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(r => [r.dataset.seq, r.textContent]);",
        f"{LIST} [data-seq]",
    )]


def test_member_and_time_range_filters(install, app_for):
    install.cli("member", "add", "founder")
    install.cli("member", "add", "maria")
    install.cli("--as", "maria", "agent", "add", "maria-agent", "--owner", "maria",
                "--purpose", "made by maria")
    install.cli("--as", "founder", "agent", "add", "founder-agent", "--owner", "founder",
                "--purpose", "made by founder")
    app = app_for(install)
    app.go("audit")
    app.wait(f"{LIST} [data-seq]")
    app.wait_until(lambda: any("founder-agent" in t for _, t in shown(app)))

    Select(app.wait('select[aria-label="Filter by team member"]')).select_by_value("maria")
    app.wait_until(
        lambda: shown(app) and all("founder-agent" not in t for _, t in shown(app)),
        message="the member filter kept founder's event",
    )
    assert any("maria-agent" in t for _, t in shown(app)), shown(app)
    assert "matching" in app.body()

    # Everything happened within the last hour.
    Select(app.wait('select[aria-label="Time range"]')).select_by_value("1h")
    app.wait_until(lambda: any("maria-agent" in t for _, t in shown(app)))

    # Custom dates: from a day long past, everything of maria's is there.
    Select(app.wait('select[aria-label="Time range"]')).select_by_value("custom")
    set_date(app, "From date", "2020-01-01")
    app.wait_until(lambda: any("maria-agent" in t for _, t in shown(app)))

    # A range that ends before it starts is refused before asking the backend, and the
    # previous range's events do not stay on screen under it.
    set_date(app, "To date", "2019-12-31")
    app.wait_text("The range ends before it starts: swap the dates.")
    app.wait_until(lambda: shown(app) == [], message="the previous range's events stayed")

    # A range long past: nothing, and the list says what to loosen.
    set_date(app, "To date", "2020-01-31")
    app.wait_text("No events match: widen the time range or clear the member filter.")
    assert shown(app) == []

    Select(app.wait('select[aria-label="Time range"]')).select_by_value("all")
    Select(app.wait('select[aria-label="Filter by team member"]')).select_by_value("")
    app.wait_until(lambda: any("founder-agent" in t for _, t in shown(app)))


def test_exports_cover_the_time_range_shown(seeded, app_for):
    import glob
    import json
    import os
    import re

    app = app_for(seeded)
    app.go("audit")
    app.wait('[data-testid="audit-list"] [data-seq]')
    # A range long past: the export holds no event.
    Select(app.wait('select[aria-label="Time range"]')).select_by_value("custom")
    set_date(app, "From date", "2020-01-01")
    set_date(app, "To date", "2020-01-31")
    app.wait_text("No events match")
    app.button("Export JSON Lines")
    done = app.wait('[data-testid="export-done"]', timeout=60)
    assert "Saved 0 events" in done.text, done.text
    path = re.search(r"to (/\S+\.jsonl)\.", done.text).group(1)
    lines = [json.loads(line) for line in open(path).read().splitlines()]
    assert lines[0]["scope"]["since"].startswith("2020-01-01T00:00:00")
    assert lines[0]["scope"]["until"].startswith("2020-02-01T00:00:00"), "the end day is included"
    assert [line for line in lines if line.get("type") == "event"] == []
    assert seeded.cli("audit", "verify", path, check=False).returncode == 0
    os.remove(path)
    # All time: every event.
    Select(app.wait('select[aria-label="Time range"]')).select_by_value("all")
    app.wait('[data-testid="audit-list"] [data-seq]')
    app.button("Export JSON Lines")
    app.wait_until(lambda: "Saved 0 events" not in app.wait('[data-testid="export-done"]').text)
    done = app.wait('[data-testid="export-done"]').text
    n = int(re.search(r"Saved ([\d,]+) events", done).group(1).replace(",", ""))
    assert n >= 4, done  # the seed: a member, a connection, an agent, the issuer key
    (path,) = glob.glob(os.path.join(seeded.export_dir, "*.jsonl"))
    lines = [json.loads(line) for line in open(path).read().splitlines()]
    assert len([line for line in lines if line.get("type") == "event"]) == n
    assert seeded.cli("audit", "verify", path, check=False).returncode == 0
