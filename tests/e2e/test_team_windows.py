"""Issue 21's real-window test: two desktop apps signed in as two members of one team server
(on PostgreSQL, its keys in SoftHSM2), and a third as the team's auditor.

- One founder revokes an agent in their window; the other founder's window shows it revoked
  within 2 seconds, with no reload (the server's event stream).
- An approval requested by an agent shows in its owner's window, not in the auditor's.
- Both windows open in the team workspace, say who they are, and witness the team's log.
"""

import json
import subprocess
import time

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from conftest import CLI
from team_fixtures import desks, team_server  # noqa: F401 (pytest fixtures)

TEAM_SECRET = "e2e-team-anthropic-key-never-shown-0123456789"


def setup_team(team_server, desks):
    alice, bob, carol = desks("alice"), desks("bob"), desks("carol")
    team_server.join(alice, team_server.admin_code)
    for desk, name, role in ((bob, "bob", "member"), (carol, "carol", "auditor")):
        code = alice.cli_json("team", "invite", name, "--role", role)["invite_code"]
        team_server.join(desk, code)
    t = team_server
    t.cli("connection", "add", "billing", "--base-url", "https://billing.example",
          "--action", "read=GET:/invoices/**")
    t.cli("connection", "edit", "billing", "--approval", "always")
    for agent, owner in (("ops-bot", "bob"), ("ledger-bot", "alice")):
        t.cli("agent", "add", agent, "--owner", owner, "--purpose", "nightly reconciliation",
              "--scope", "billing:read", "--generate-key",
              "--key-file", f"{t.root}/{agent}.pem", "--key-format", "pem")
    return alice, bob, carol


def open_team_window(app_for, desk, person):
    # The window checks and cosigns the team's log every 2 s instead of every minute.
    desk.env["MANDATE_WITNESS_SYNC_SECS"] = "2"
    app = app_for(desk, person=person)
    app.wait('[data-testid="workspace-team"][aria-pressed="true"]', timeout=30)
    return app


def text_of(app, css):
    """The text of the first element matching `css`, or "" (also while the screen reloads on a
    team event and replaces it)."""
    try:
        found = app.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def row_text(app, agent):
    return text_of(app, f'tr[data-agent="{agent}"]')


def test_a_revocation_in_one_founders_window_shows_in_the_others_within_two_seconds(team_server, desks, app_for):
    alice, bob, _ = setup_team(team_server, desks)
    a = open_team_window(app_for, alice, "alice")
    b = open_team_window(app_for, bob, "bob")
    assert "alice" in a.wait('[data-testid="team-identity"]').text
    assert "Admin" in a.wait('[data-testid="team-identity"]').text
    assert "bob" in b.wait('[data-testid="team-identity"]').text
    # Both see the team's agents (the server's registry, not their own computers').
    for app in (a, b):
        app.wait('tr[data-agent="ops-bot"]', timeout=30)
        app.wait('tr[data-agent="ledger-bot"]')
    assert "revoked" not in row_text(b, "ops-bot").lower()
    b.screenshot("team-bob-before")

    # Alice (an admin) revokes bob's agent in her window.
    a.click('tr[data-agent="ops-bot"] td:nth-child(2)')
    a.wait("h1.mono-title")
    a.button("Revoke…")
    a.wait('[role="dialog"]')
    a.type('textarea[name="reason"]', "key leaked in a CI log")
    a.button("Revoke agent")
    a.wait_until(lambda: not a.driver.find_elements(By.CSS_SELECTOR, '[role="dialog"]'),
                 message="the revoke dialog did not close")
    done = time.monotonic()
    # The server recorded it in alice's name.
    agent = team_server.cli_json("agent", "show", "ops-bot")
    assert agent["status"] == "revoked"

    # Bob's window shows it within 2 seconds, by itself.
    b.wait_until(lambda: "revoked" in row_text(b, "ops-bot").lower(), timeout=10,
                 message="bob's window never showed the revocation")
    lag = time.monotonic() - done
    b.screenshot("team-bob-after-revoke")
    assert lag <= 2.0, f"bob's window showed the revocation {lag:.2f} s after alice's click"
    team_server.cli("audit", "export", "--format", "bundle", "--out", f"{team_server.root}/t.bundle")
    with open(f"{team_server.root}/t.bundle") as f:
        revoked = [json.loads(line) for line in f if '"agent.revoked"' in line]
    assert revoked, "the revocation is in the team's trail"
    assert "alice" in json.dumps(revoked[-1]), revoked[-1]

    # Alice, an admin, adds a connection from her window, from a preset, and gives it its key:
    # it goes to the team server's keychain, named in her name; bob (a member) has no such
    # button.
    a.go("connections")
    a.button("+ Add connection")
    a.button("Anthropic")
    a.button("Add connection")
    field = a.wait('input[type="password"]')
    field.send_keys(TEAM_SECRET)
    a.button("Save to keychain")
    a.wait_until(lambda: "the team server's keychain" in text_of(a, 'tr[data-connection="anthropic"]'),
                 timeout=20, message="the secret is not shown as stored")
    assert TEAM_SECRET not in a.driver.page_source
    listed = team_server.cli_json("connection", "list")
    anthropic = next(c for c in listed if c["name"] == "anthropic")
    assert anthropic["has_secret"] is True
    b.go("connections")
    b.wait('tr[data-connection="anthropic"]', timeout=20)
    assert not b.driver.find_elements(By.XPATH, "//button[normalize-space(.)='+ Add connection']")
    a.screenshot("team-connections-admin")

    # Both windows witness the log: each cosigns a checkpoint that includes the revocation,
    # and the PDF exported on the server carries both cosignatures, each checked with that
    # desktop's own witness key.
    # Cosignatures alone make no new checkpoint: the log grown by everything else.
    grown = int(team_server.pg.psql("SELECT max(seq) FROM audit_events WHERE action <> 'witness.cosigned'").strip())
    deadline = time.monotonic() + 30
    while True:
        ws = team_server.cli_json("team", "witness", "list")["witnesses"]
        done_by = [w for w in ws if (w.get("last_cosigned_size") or 0) >= grown]
        if len(done_by) >= 2:
            break
        assert time.monotonic() < deadline, f"the windows did not cosign the grown log: {ws}"
        time.sleep(1)
    for app in (a, b):
        assert "witnessed" in app.wait('[data-testid="witness-status"]').text
    # The team's trail in alice's window: the revocation, in her name.
    a.go("audit")
    a.wait_until(lambda: "key leaked in a CI log" in a.body() or "ops-bot" in a.body(), timeout=20,
                 message="the team's audit trail does not show the revocation")
    a.screenshot("team-audit")
    pdf = f"{team_server.root}/team.pdf"
    team_server.cli("audit", "export", "--format", "pdf", "--out", pdf)
    for desk in (alice, bob):
        vkey = desk.cli_json("team", "witness", "key")["vkey"]
        out = team_server.cli("audit", "verify", pdf, "--witness", vkey).stdout
        assert f"witness {vkey.split('+')[0]} cosigned the checkpoint of" in out, out
    # The connection alice added is in the team's trail in her name; its key is nowhere in it.
    team_server.cli("audit", "export", "--format", "bundle", "--out", f"{team_server.root}/t2.bundle")
    with open(f"{team_server.root}/t2.bundle") as f:
        trail = f.read()
    assert TEAM_SECRET not in trail
    added = [json.loads(line) for line in trail.splitlines() if '"connection.added"' in line and "anthropic" in line]
    assert added and "alice" in json.dumps(added[-1]), added


def test_an_approval_shows_in_its_owners_window_and_not_in_the_auditors(team_server, desks, app_for):
    _, bob, carol = setup_team(team_server, desks)
    b = open_team_window(app_for, bob, "bob")
    c = open_team_window(app_for, carol, "carol")
    assert "read only" in c.wait('[data-testid="team-identity"]').text
    for app in (b, c):
        app.go("approvals")
        app.wait('[data-testid="no-approvals"]', timeout=30)

    # bob's agent asks for a token from the team server and calls the broker: the call is held
    # for a person (the connection always asks).
    t = team_server
    token = subprocess.run(
        [CLI, "token", "ops-bot", "--server", t.url, "--server-fingerprint", t.fingerprint,
         "--key-file", f"{t.root}/ops-bot.pem"],
        env=t.env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    held = subprocess.run(
        ["curl", "-sk", "-H", f"Authorization: Bearer {token}", f"{t.url}/proxy/billing/invoices/42"],
        capture_output=True, text=True,
    ).stdout
    assert "approval_pending" in held, held
    pending = t.cli_json("approvals", "list")
    assert len(pending) == 1, pending
    ident = pending[0]["id"]

    b.wait(f'[data-testid="approval-{ident}"]', timeout=10)
    b.screenshot("team-bob-approval")
    # The auditor's window has had the same time (and more) and still shows none.
    time.sleep(3)
    assert not c.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="approval-{ident}"]')
    assert c.driver.find_elements(By.CSS_SELECTOR, '[data-testid="no-approvals"]')
    c.screenshot("team-carol-no-approval")

    # Bob approves it in his window; the server records his decision.
    b.button("Approve once")
    b.wait_until(lambda: not b.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="approval-{ident}"]'),
                 message="the approved request stayed in bob's inbox")
    decided = t.cli_json("approvals", "list", "--all")
    assert decided[0]["decided_by"] == "bob", decided


def test_connecting_from_settings_shows_the_fingerprint_first_and_a_changed_certificate_is_refused(team_server, desks, app_for):
    desk = desks("dana")
    t = team_server
    # An admin invites dana; she connects from the app, not the command line.
    admin = desks("alice")
    t.join(admin, t.admin_code)
    code = admin.cli_json("team", "invite", "dana", "--role", "member")["invite_code"]
    t.cli("connection", "add", "billing", "--base-url", "https://billing.example",
          "--action", "read=GET:/invoices/**")
    t.cli("agent", "add", "ops-bot", "--owner", "alice", "--purpose", "nightly reconciliation",
          "--scope", "billing:read")
    app = app_for(desk, person="dana")
    app.go("settings")
    app.type('[data-testid="team-url"]', t.url)
    app.click('[data-testid="team-check"]')
    shown = app.wait('[data-testid="team-fingerprint"]').text
    # The fingerprint shown is the server certificate's, as `openssl x509 -fingerprint` prints it.
    assert shown.strip() == t.fingerprint, (shown, t.fingerprint)
    # Nothing was sent: the invite is still unused, and this computer has joined nothing.
    assert desk.cli("team", "whoami", check=False).returncode != 0
    app.screenshot("team-connect-fingerprint")
    # A wrong code is refused with the server's sentence and leaves nothing behind.
    app.type('[data-testid="team-code"]', "not-the-code")
    app.click('[data-testid="team-join"]')
    assert "not valid" in app.wait('[data-testid="team-error"]').text
    assert desk.cli("team", "whoami", check=False).returncode != 0
    app.type('[data-testid="team-code"]', code)
    app.click('[data-testid="team-join"]')
    joined = app.wait('[data-testid="team-joined"]').text
    assert "dana" in joined and t.url in joined, joined
    app.wait('[data-testid="workspace-team"][aria-pressed="true"]')
    app.go("agents")
    app.wait('tr[data-agent="ops-bot"]', timeout=20)
    assert desk.cli_json("team", "whoami")["name"] == "dana"
    app.screenshot("team-connected")

    # The server comes back with another certificate (same address): the app refuses it,
    # says so, and shows what it read before.
    t.stop_server()
    import os
    os.replace(t.cert, t.cert + ".old")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", t.key, "-out", t.cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    t.start_server()
    banner = app.wait('[data-testid="team-offline"]', timeout=30)
    app.wait_until(lambda: "pinned" in app.wait('[data-testid="team-offline"]').text, timeout=30,
                   message="the offline banner does not say the certificate is not the pinned one")
    assert app.driver.find_elements(By.CSS_SELECTOR, 'tr[data-agent="ops-bot"]'), "the last data read stays"
    app.screenshot("team-offline-other-certificate")
    assert banner is not None


def test_a_history_rewritten_in_postgresql_turns_the_windows_witness_banner_on(team_server, desks, app_for):
    t = team_server
    alice = desks("alice")
    joined = t.join(alice, t.admin_code)
    first = joined["witness"]["cosigned_size"]
    # The log grows, and alice's window checks and cosigns it.
    for i in range(4):
        t.cli("member", "add", f"colleague-{i}")
    grown = int(t.pg.psql("SELECT max(seq) FROM audit_events").strip())
    app = open_team_window(app_for, alice, "alice")
    deadline = time.monotonic() + 30
    while True:
        ws = t.cli_json("team", "witness", "list")["witnesses"]
        if ws and (ws[0].get("last_cosigned_size") or 0) >= grown:
            break
        assert time.monotonic() < deadline, f"the window did not cosign the grown log: {ws}"
        time.sleep(1)
    seen = ws[0]["last_cosigned_size"]
    assert "witnessed" in app.wait('[data-testid="witness-status"]').text

    # The database's administrator rewrites history behind the server's back: the events after
    # the join's checkpoint go, with their checkpoints and the copies of the newest one, and
    # new events take their place; the restarted server signs the new history.
    t.stop_server()
    t.pg.psql(
        f"DELETE FROM audit_events WHERE seq > {first}; "
        f"DELETE FROM audit_checkpoints WHERE size > {first}; "
        "DELETE FROM sealed_secrets WHERE account LIKE '%/audit-checkpoint'"
    )
    import os
    kept = os.path.join(t.env["MANDATE_DATA_DIR"], "audit-checkpoint.txt")
    if os.path.exists(kept):
        os.remove(kept)
    t.start_server()
    for i in range(seen - first + 3):
        t.cli("member", "add", f"someone-{i}")

    # The window's next check refuses it, loudly; the server gets no new cosignature.
    banner = app.wait('[data-testid="witness-refused"]', timeout=30)
    assert "does not match what this computer saw" in banner.text, banner.text
    assert "REFUSED" in app.wait('[data-testid="witness-status"]').text
    app.screenshot("team-witness-refused")
    ws = t.cli_json("team", "witness", "list")["witnesses"]
    assert ws[0]["last_cosigned_size"] == seen, ws
    # And this computer's own trail records it.
    db = os.path.join(alice.data_dir, "mandate.db")
    forked = subprocess.run(["sqlite3", db, "SELECT count(*) FROM audit_events WHERE action = 'witness.log_forked'"],
                            capture_output=True, text=True).stdout.strip()
    assert int(forked or 0) >= 1, forked


def test_an_event_that_changes_only_the_trail_reloads_the_audit_screen_and_leaves_other_screens_in_place(team_server, desks, app_for):
    """A sign-in, a cosignature or a refusal changes nothing an agent's page lists: the page a
    person is reading stays as it is (the same elements, nothing redrawn under their cursor),
    while the auditor's audit screen shows the new event by itself. An event that changes the
    agent reads the page again in place."""
    alice, _, carol = setup_team(team_server, desks)
    t = team_server
    a = open_team_window(app_for, alice, "alice")
    c = open_team_window(app_for, carol, "carol")
    c.go("audit")
    a.click('tr[data-agent="ops-bot"] td:nth-child(2)', timeout=30)
    a.wait("h1.mono-title")
    # Let the windows' own sign-ins and first cosignatures pass, then mark alice's page.
    time.sleep(3)
    a.driver.execute_script("document.querySelector('h1.mono-title').dataset.mark = 'kept'")

    # Carol, the auditor, tries to invite someone from her computer: refused, and audited
    # (`team.request_denied`), which changes nothing an agent's page shows.
    refused = carol.cli("team", "invite", "dave", "--role", "member", check=False)
    assert refused.returncode != 0, refused.stdout
    c.wait_until(lambda: "team.request_denied" in c.body(), timeout=20,
                 message="the auditor's audit screen did not show the refusal by itself")
    time.sleep(1.5)  # past the windows' 300 ms reload delay
    mark_js = "const h = document.querySelector('h1.mono-title'); return h && h.dataset.mark"
    assert a.driver.execute_script(mark_js) == "kept", "alice's agent page was redrawn for an event that changes only the trail"

    # An event that changes the agent reads the page again, in place: the suspension shows on
    # the same page (not one drawn anew, which would lose the person's scroll).
    t.cli("--as", "alice", "agent", "suspend", "ops-bot", "--reason", "rotating its key")
    a.wait_until(lambda: "suspended" in text_of(a, "header.screen-head").lower(), timeout=10,
                 message="alice's page did not show the suspension")
    assert a.driver.execute_script(mark_js) == "kept", "alice's agent page was drawn anew instead of read again"


def test_offline_the_window_keeps_what_it_read_refuses_changes_and_catches_up_when_the_server_is_back(team_server, desks, app_for):
    """Contract §4, offline: a team window keeps showing what it read, under the offline banner,
    also on a screen opened again; a change is refused with a sentence and nothing is queued (a revoke never waits silently);
    once the server is back (same certificate) the banner goes and what changed meanwhile shows
    in the window by itself, with no reload."""
    alice, bob, _ = setup_team(team_server, desks)
    t = team_server
    a = open_team_window(app_for, alice, "alice")
    b = open_team_window(app_for, bob, "bob")
    b.wait('tr[data-agent="ops-bot"]', timeout=30)
    b.wait('tr[data-agent="ledger-bot"]')
    # Alice has ops-bot's page open when the server goes away.
    a.click('tr[data-agent="ops-bot"] td:nth-child(2)', timeout=30)
    a.wait("h1.mono-title")

    t.stop_server()
    for app in (a, b):
        banner = app.wait('[data-testid="team-offline"]', timeout=20)
        assert "Showing what was read at" in banner.text, banner.text
    # What each window read stays under the banner (a screen read again while offline is
    # answered from what was read before, not with an error).
    a.wait("h1.mono-title", timeout=5)
    b.wait('tr[data-agent="ops-bot"]', timeout=5)
    assert not b.driver.find_elements(By.CSS_SELECTOR, 'main [role="alert"]'), b.body()

    # Alice tries to revoke ops-bot while the server is away: refused, with a sentence.
    a.button("Revoke…")
    a.wait('[role="dialog"]')
    a.type('textarea[name="reason"]', "offline attempt")
    a.button("Revoke agent")
    refused = a.wait('[role="dialog"] [role="alert"]', timeout=30).text
    assert "cannot be reached" in refused and "nothing was changed" in refused, refused
    a.screenshot("team-offline-revoke-refused")
    a.button("Cancel")
    b.screenshot("team-offline-list")
    # Moving between screens offline keeps what was read: alice goes back to the list (read
    # before the server went away) and her agents are there, not an error.
    a.go("agents")
    a.wait('tr[data-agent="ops-bot"]', timeout=10)
    assert not a.driver.find_elements(By.CSS_SELECTOR, 'main [role="alert"]'), a.body()

    # Meanwhile ledger-bot is suspended on the server's host (straight to PostgreSQL).
    assert "suspended" not in row_text(b, "ledger-bot").lower()
    t.cli("--as", "alice", "agent", "suspend", "ledger-bot", "--reason", "maintenance window")
    t.start_server()
    # Back within the stream's backoff (at most 10 s); bob's list shows the change by itself.
    b.wait_until(lambda: not b.driver.find_elements(By.CSS_SELECTOR, '[data-testid="team-offline"]'),
                 timeout=30, message="the offline banner stayed after the server came back")
    b.wait_until(lambda: "suspended" in row_text(b, "ledger-bot").lower(), timeout=10,
                 message="the change made while the window was offline never showed")
    b.screenshot("team-back-online")
    # Nothing was queued: the refused revoke did not happen once the server came back.
    time.sleep(2)
    assert t.cli_json("agent", "show", "ops-bot")["status"] == "active"
    assert "revoked" not in row_text(b, "ops-bot").lower()
