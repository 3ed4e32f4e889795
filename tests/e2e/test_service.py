"""The app and the background service (`mandate service install`), in the real window.

A real systemd user manager is started the way a login starts one (see `UserSession`), the
service is installed into it, and the app started afterwards attaches to the service's endpoint
instead of serving its own: the sidebar and Settings say "served by the background service" and
offer no pause. When the service is uninstalled while the app runs, the app serves the endpoint
itself again. The agent page's "Connect this agent" lines name the agent and say the endpoint
runs while Mandate is closed; `code` spans in them, and in audit reasons, show as code.
"""

import json
import os
import signal
import subprocess
import time

from selenium.webdriver.common.by import By


class UserSession:
    """A user's login session: a real `systemd --user` with its own runtime and config folders,
    the session bus at $XDG_RUNTIME_DIR/bus (a link to the harness's bus, which holds the
    keyring; the manager's own dbus.socket is masked so it does not replace it), in a private
    mount namespace where /run/systemd/system exists (this machine's PID 1 is not systemd, and
    systemd will not run as a user manager otherwise). Needs root, as the test harness runs."""

    def __init__(self, root):
        self.runtime = os.path.join(root, "runtime")
        self.config = os.path.join(root, "config")
        self.home = os.path.join(root, "home")
        for d in (self.runtime, self.config, self.home):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.runtime, 0o700)
        bus = os.environ["DBUS_SESSION_BUS_ADDRESS"]
        assert bus.startswith("unix:path="), bus
        os.symlink(bus[len("unix:path="):].split(",")[0], os.path.join(self.runtime, "bus"))
        units = os.path.join(self.config, "systemd", "user")
        os.makedirs(units, exist_ok=True)
        for masked in ("dbus.socket", "dbus.service"):
            os.symlink("/dev/null", os.path.join(units, masked))
        self.proc = None

    def vars(self):
        return {
            "XDG_RUNTIME_DIR": self.runtime,
            "XDG_CONFIG_HOME": self.config,
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=" + os.path.join(self.runtime, "bus"),
        }

    def login(self):
        env = dict(os.environ, HOME=self.home, **self.vars())
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && "
             "exec /lib/systemd/systemd --user"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            out = subprocess.run(["systemctl", "--user", "is-active", "default.target"],
                                 env=dict(os.environ, **self.vars()), capture_output=True, text=True)
            if out.stdout.strip() == "active":
                return
            time.sleep(0.1)
        raise AssertionError("the user manager did not start")

    def logout(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def service(install, session, *args):
    env = dict(install.env, **session.vars())
    out = subprocess.run([os.environ["MANDATE_E2E_CLI"], "service", *args], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def status(install, session):
    env = dict(install.env, **session.vars())
    out = subprocess.run([os.environ["MANDATE_E2E_CLI"], "--json", "service", "status"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_app_attaches_to_the_background_service_and_takes_over_when_it_goes(seeded, app_for, tmp_path):
    session = UserSession(str(tmp_path / "session"))
    session.login()
    try:
        seeded.cli("agent", "suspend", "billing-report-agent", "--reason", "checking `mandate scan` findings")
        seeded.cli("agent", "resume", "billing-report-agent")
        service(seeded, session, "install")
        deadline = time.time() + 20
        while status(seeded, session)["endpoint"]["served_by"] != "service":
            assert time.time() < deadline, status(seeded, session)
            time.sleep(0.2)
        port = seeded.env["MANDATE_PORT"]

        app = app_for(seeded)
        app.wait_until(
            lambda: f"Endpoint on :{port}" in app.wait('[data-testid="endpoint-status"]').text
            and app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="endpoint-via"]'),
            message="the app did not attach to the service's endpoint",
        )
        app.go("settings")
        served = app.wait('[data-testid="served-by"]').text
        assert "Served by the background service" in served, served
        assert "keeps running while Mandate is closed" in served
        assert not app.driver.find_elements(By.XPATH, "//button[normalize-space(.)='Pause endpoint']")
        assert "mandate service uninstall" in app.body()
        app.screenshot("settings-served-by-service")

        # The agent page: how to connect it, with its name, and the endpoint runs without the app.
        app.go("agents")
        app.click('tr[data-agent="billing-report-agent"] td:nth-child(2)')
        section = app.wait('[data-testid="connect-agent"]')
        app.wait_until(lambda: "while Mandate is closed" in app.wait('[data-testid="connect-endpoint"]').text)
        for way in ("timer", "cron", "file", "sdk"):
            app.click(f'[data-testid="connect-agent"] [data-tab="{way}"]')
            text = section.find_element(By.CSS_SELECTOR, f'[data-way="{way}"] pre').text
            assert "mandate exec billing-report-agent -- " in text, (way, text)
        # `code` spans show as code, never as backticks.
        codes = [c.text for c in section.find_elements(By.CSS_SELECTOR, "code.inline")]
        assert "OPENAI_BASE_URL" in codes, codes
        assert "`" not in section.find_element(By.CSS_SELECTOR, '[data-way="sdk"] p').text
        app.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", section)
        timeline = app.wait('[data-testid="agent-timeline"]')
        app.wait_until(lambda: timeline.find_elements(By.XPATH, ".//code[normalize-space(.)='mandate scan']"),
                       message="the suspension reason's code span was not rendered as code")
        assert "`mandate scan`" not in app.body()
        app.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", section)
        app.screenshot("agent-connect")

        # The service goes: the app serves the endpoint itself, and can pause it again.
        service(seeded, session, "uninstall")
        app.wait_until(
            lambda: app.wait('[data-testid="endpoint-status"]').text == f"Endpoint on :{port}"
            and not app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="endpoint-via"]'),
            timeout=30,
            message="the app did not take the endpoint over",
        )
        app.go("settings")
        app.button("Pause endpoint")
        app.wait_until(lambda: "Endpoint paused" in app.wait('[data-testid="endpoint-status"]').text)
        assert seeded.cli("token", "billing-report-agent", check=False).returncode == 8
    finally:
        session.logout()
