"""Issue 19's "done when", in the real window: a new agent calls an action marked
`below-floor` through the broker and waits; the founder opens Approvals, sees who asks for
what, on whose behalf and with what trust, and either approves it for one hour (the held call
completes) or denies it with a reason (the held call fails with that reason and never reaches
the upstream). The upstream is the broker tests' GitHub-shaped server, its own process on
loopback."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

UPSTREAM = os.path.join(os.path.dirname(__file__), "..", "broker_upstream", "upstream.py")


def test_a_held_broker_call_completes_when_the_founder_approves_it_for_an_hour(install, app_for, tmp_path):
    log = tmp_path / "upstream.jsonl"
    upstream = subprocess.Popen([sys.executable, UPSTREAM, str(log)], stdout=subprocess.PIPE, text=True)
    try:
        up_port = int(upstream.stdout.readline().strip())
        install.cli("member", "add", "founder")
        install.cli(
            "connection", "add", "github", "--preset", "github",
            "--base-url", f"http://127.0.0.1:{up_port}", "--trust-floor", "TRUSTED",
        )
        install.cli("connection", "set-secret", "github", input="ghp_e2eSECRET0123456789")
        install.cli("connection", "edit", "github", "--action-approval", "repo.read=below-floor")
        install.cli(
            "agent", "add", "billing-report-agent", "--owner", "founder",
            "--purpose", "monthly billing report", "--scope", "github:repo.read", "--generate-key",
        )
        app = app_for(install)
        app.wait_until(
            lambda: "Endpoint on :" in app.wait('[data-testid="endpoint-status"]').text,
            message="the endpoint did not start with the window",
        )
        token = install.cli("token", "billing-report-agent").stdout.strip()
        port = install.env["MANDATE_PORT"]
        result = {}

        def call():
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/proxy/github/repos/acme/billing/issues",
                headers={"Authorization": f"Bearer {token}"},
            )
            started = time.time()
            try:
                with urllib.request.urlopen(req, timeout=90) as r:
                    result["status"] = r.status
                    result["body"] = r.read().decode()
            except urllib.error.HTTPError as e:
                result["status"] = e.code
                result["body"] = e.read().decode()
            result["waited"] = time.time() - started

        # The native notification goes over the session bus to org.freedesktop.Notifications;
        # dbus-monitor (an independent reader) sees the app's Notify call whether or not a
        # notification daemon runs under Xvfb.
        notes = tmp_path / "notifications.txt"
        monitor = subprocess.Popen(
            ["dbus-monitor", "--session", "interface='org.freedesktop.Notifications',member='Notify'"],
            stdout=open(notes, "w"), stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        t = threading.Thread(target=call)
        t.start()

        app.go("approvals")
        card = app.wait('[data-testid^="approval-"]', timeout=30)
        text = card.text
        assert "billing-report-agent asks to call github:repo.read" in text, text
        assert "PENDING" in text and "requires at least TRUSTED" in text, text
        assert "billing-report-agent is owned by founder" in text, text
        app.screenshot("approvals-inbox")
        app.wait_until(
            lambda: "An approval is waiting" in notes.read_text(),
            message="no native notification was sent for the waiting approval",
        )
        monitor.terminate()
        assert "billing-report-agent" in notes.read_text(), notes.read_text()
        # Held, not answered: the call is still waiting and nothing reached the upstream. (A
        # timing bound said this before; a fast machine approves in under half a second.)
        assert t.is_alive(), f"the call was answered before anyone decided: {result}"
        assert not log.exists() or not log.read_text().strip(), "the upstream was reached before the approval"
        app.button("For 1 hour")
        t.join(60)
        assert not t.is_alive(), "the held call never returned"
        assert result["status"] == 200, result
        assert json.loads(log.read_text().splitlines()[0])["target"] == "/repos/acme/billing/issues"
        app.wait_text("Approved by founder until")
        app.wait('[data-testid="no-approvals"]')
        app.screenshot("approvals-decided")
        decided = install.cli_json("approvals", "list", "--all")
        assert decided[0]["status"] == "approved" and decided[0]["decided_by"] == "founder"

        # The agent's page explains its score signal by signal.
        app.go("agents")
        app.click('a[href="#agents/billing-report-agent"]')
        score = app.wait('[data-testid="trust-score"]')
        assert "/100" in score.text, score.text
        app.wait_text("The score is the sum of the signals' points below")
        app.screenshot("agent-trust")
        none = app.wait('[data-testid="no-attestations"]', visible=False)
        app.driver.execute_script("arguments[0].scrollIntoView()", none)
        assert "mandate attest add" in none.text, none.text
        app.screenshot("agent-trust-attestations")

        # Settings: thresholds that make no sense cannot be saved; a change names the member.
        app.go("settings")
        app.wait('[data-testid="trust-thresholds"]')
        app.type('input[aria-label="TRUSTED from score"]', "15")
        problem = app.wait('[data-testid="threshold-problem"]')
        assert "TRUSTED must start above PENDING (20)" in problem.text, problem.text
        app.type('input[aria-label="TRUSTED from score"]', "80")
        app.type('input[aria-label="Organisation floor score"]', "20")
        app.button("Save thresholds")
        app.wait_text("Saved by founder: TRUSTED from 80, PENDING from 20; every request now needs a score of at least 20.")
        app.driver.execute_script(
            "document.querySelector('[data-testid=\"trust-thresholds\"]').scrollIntoView()"
        )
        app.screenshot("settings-trust")
        settings = install.cli_json("trust")
        assert settings["thresholds"]["trusted_min"] == 80 and settings["organisation_floor"] == 20, settings
    finally:
        upstream.terminate()
        upstream.wait(10)


def test_a_held_broker_call_fails_with_the_founders_reason_when_denied_in_the_window(install, app_for, tmp_path):
    log = tmp_path / "upstream.jsonl"
    upstream = subprocess.Popen([sys.executable, UPSTREAM, str(log)], stdout=subprocess.PIPE, text=True)
    try:
        up_port = int(upstream.stdout.readline().strip())
        install.cli("member", "add", "founder")
        install.cli(
            "connection", "add", "github", "--preset", "github",
            "--base-url", f"http://127.0.0.1:{up_port}", "--trust-floor", "TRUSTED",
        )
        install.cli("connection", "set-secret", "github", input="ghp_e2eSECRET0123456789")
        install.cli("connection", "edit", "github", "--action-approval", "repo.read=below-floor")
        install.cli(
            "agent", "add", "billing-report-agent", "--owner", "founder",
            "--purpose", "monthly billing report", "--scope", "github:repo.read", "--generate-key",
        )
        app = app_for(install)
        app.wait_until(
            lambda: "Endpoint on :" in app.wait('[data-testid="endpoint-status"]').text,
            message="the endpoint did not start with the window",
        )
        app.go("approvals")
        empty = app.wait('[data-testid="no-approvals"]')
        assert "--action-approval" in empty.text and "below-floor" in empty.text, empty.text
        app.screenshot("approvals-empty")

        token = install.cli("token", "billing-report-agent").stdout.strip()
        port = install.env["MANDATE_PORT"]
        result = {}

        def call():
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/proxy/github/repos/acme/billing/issues",
                headers={"Authorization": f"Bearer {token}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=90) as r:
                    result["status"] = r.status
                    result["body"] = r.read().decode()
            except urllib.error.HTTPError as e:
                result["status"] = e.code
                result["body"] = e.read().decode()

        t = threading.Thread(target=call)
        t.start()

        # The inbox is already open: the request must arrive without leaving the screen.
        card = app.wait('[data-testid^="approval-"]', timeout=30)
        assert "is owned by founder" in card.text, card.text
        # While the call is held, the clock shown is the hold, and the call itself is named.
        assert "the agent waits:" in card.find_element("css selector", '[data-testid="time-left"]').text
        assert "GET /repos/acme/billing/issues" in card.text, card.text
        app.button("Deny…")
        app.type('input[aria-label="Reason for denying"]', "billing reports read from the export, not issues")
        app.button("Deny")
        t.join(60)
        assert not t.is_alive(), "the held call never returned"
        assert result["status"] == 403, result
        assert "founder denied this call" in result["body"], result
        assert "billing reports read from the export, not issues" in result["body"], result
        assert not log.exists() or log.read_text().strip() == "", "a denied call reached the upstream"
        app.wait_text("Denied by founder: billing reports read from the export, not issues")
        app.screenshot("approvals-denied")
        decided = install.cli_json("approvals", "list", "--all")
        assert decided[0]["status"] == "denied" and decided[0]["decided_by"] == "founder"
        assert decided[0]["reason"] == "billing reports read from the export, not issues"
    finally:
        upstream.terminate()
        upstream.wait(10)
