"""Fixtures for end-to-end tests of the real Mandate window.

Each test gets its own data folder and keychain service, seeded with the real `mandate` CLI,
and its own tauri-driver (which starts the real desktop binary through WebKitWebDriver).
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
from urllib3.exceptions import ProtocolError
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.client_config import ClientConfig
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

APP = os.environ["MANDATE_E2E_APP"]
CLI = os.environ["MANDATE_E2E_CLI"]
TAURI_DRIVER = os.environ["MANDATE_E2E_TAURI_DRIVER"]
SHOTS = os.environ.get("MANDATE_E2E_SCREENSHOTS", tempfile.gettempdir())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def descendants(pid):
    """Ids of every process below `pid` (children, their children...), read from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Install:
    """An isolated Mandate installation: data folder, keychain service, endpoint port."""

    def __init__(self, root):
        self.data_dir = os.path.join(root, "data")
        self.env = dict(os.environ)
        self.export_dir = os.path.join(root, "exports")
        os.makedirs(self.export_dir, exist_ok=True)
        self.env.update(
            MANDATE_DATA_DIR=self.data_dir,
            MANDATE_KEYCHAIN_SERVICE=f"mandate-e2e-{uuid.uuid4().hex[:8]}",
            MANDATE_PORT=str(free_port()),
            # Exports go here instead of through the native save dialog, which WebDriver
            # cannot reach.
            MANDATE_EXPORT_DIR=self.export_dir,
        )

    def cli(self, *args, check=True, input=None):
        out = subprocess.run(
            [CLI, *args], env=self.env, capture_output=True, text=True, input=input
        )
        if check and out.returncode != 0:
            raise AssertionError(f"mandate {' '.join(args)} failed: {out.stderr}")
        return out

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def keychain(self):
        """What the real Secret Service holds for this installation, read with secret-tool
        (an independent client): {account: secret}. secret-tool prints each item's label
        (`keyring:<account>@<service>`) and secret on stdout."""
        service = self.env["MANDATE_KEYCHAIN_SERVICE"]
        out = subprocess.run(
            ["secret-tool", "search", "--all", "--unlock", "service", service],
            env=self.env, capture_output=True, text=True,
        ).stdout
        items, account = {}, None
        for line in out.splitlines():
            if line.startswith("label = keyring:"):
                account = line[len("label = keyring:"):].removesuffix("@" + service)
            elif line.startswith("secret = ") and account:
                items[account] = line[len("secret = "):]
                account = None
        return items

    def connection_secret(self, name):
        """The secret the keychain holds as connection `name`'s, or None."""
        cid = self.cli_json("connection", "show", name)["id"]
        return next(
            (v for k, v in self.keychain().items() if k.endswith(f"/connection/{cid}")), None
        )

    def instance_name_taken(self):
        """Whether the session bus still has an owner for this installation's single-instance
        name (`instance_id` in src-tauri/desktop/lib.rs: FNV-1a of the installation id, to which
        tauri-plugin-single-instance appends ".SingleInstance")."""
        db = os.path.join(self.data_dir, "mandate.db")
        out = subprocess.run(
            ["sqlite3", db, "SELECT value FROM meta WHERE key = 'install_id'"],
            capture_output=True, text=True,
        ).stdout.strip()
        if not out:
            return False
        h = 0xCBF29CE484222325
        for b in out.encode():
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        # The plugin appends ".SingleInstance" (and, with its semver feature, a version).
        prefix = f'"dev.mandate.app.i{h:016x}.SingleInstance'
        r = subprocess.run(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
             "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"],
            env=self.env, capture_output=True, text=True,
        )
        return prefix in r.stdout

    def remember_person(self, name):
        """Make `name` the member this OS login is (as the app's first-run prompt would), so the
        window opens without asking. The CLI runs as the same login as the app."""
        if all(m["name"] != name for m in self.cli_json("member", "list")):
            self.cli("member", "add", name)
        self.cli("member", "use", name)


@pytest.fixture
def install(tmp_path):
    return Install(str(tmp_path))


@pytest.fixture
def seeded(install):
    install.cli("member", "add", "founder")
    install.cli(
        "connection", "add", "github", "--base-url", "https://api.github.com",
        "--action", "repo.read=GET:/repos/**",
    )
    install.cli(
        "agent", "add", "billing-report-agent", "--owner", "founder",
        "--purpose", "monthly billing report", "--scope", "github:repo.read", "--generate-key",
    )
    return install


class App:
    def __init__(self, install):
        self.install = install
        self.closed = False
        self.driver_port = free_port()
        self.native_port = free_port()
        self.proc = subprocess.Popen(
            [TAURI_DRIVER, "--port", str(self.driver_port),
             "--native-port", str(self.native_port),
             "--native-driver", "/usr/bin/WebKitWebDriver"],
            env=install.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for port in (self.driver_port, self.native_port):
            wait_for_port(port)
        opts = webdriver.common.options.ArgOptions()
        opts.set_capability("browserName", "wry")
        opts.set_capability("tauri:options", {"application": APP})
        url = f"http://127.0.0.1:{self.driver_port}"
        # The native driver can refuse the very first session while it settles: retry a
        # connection failure a few times (a real failure still fails after that).
        for attempt in range(4):
            try:
                self.driver = webdriver.Remote(
                    command_executor=url,
                    options=opts,
                    client_config=ClientConfig(remote_server_addr=url),
                )
                break
            except (ProtocolError, ConnectionError):
                if attempt == 3:
                    raise
                time.sleep(1)
        # The native driver, the app and its web processes: waited for (and ended) at close.
        self.family = descendants(self.proc.pid)

    def wait_text(self, text, timeout=20):
        WebDriverWait(self.driver, timeout).until(
            lambda d: text in d.find_element(By.TAG_NAME, "body").text
        )
        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait(self, css, timeout=20, visible=True):
        """The first element matching `css`, once it exists (and is shown)."""
        cond = EC.visibility_of_element_located if visible else EC.presence_of_element_located
        return WebDriverWait(self.driver, timeout).until(cond((By.CSS_SELECTOR, css)))

    def wait_until(self, predicate, timeout=20, message=""):
        return WebDriverWait(self.driver, timeout).until(lambda d: predicate(), message)

    def click(self, css, timeout=20):
        return self._click_fresh((By.CSS_SELECTOR, css), timeout)

    def _click_fresh(self, locator, timeout):
        """Find the clickable element and click it; found again if the screen re-rendered in
        between (a team window reloads what it shows on every live event, which replaces the
        element a moment after it was found)."""
        for attempt in range(3):
            # The element found may also be replaced while the wait checks it is shown.
            el = WebDriverWait(self.driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(
                EC.element_to_be_clickable(locator)
            )
            try:
                el.click()
                return el
            except StaleElementReferenceException:
                if attempt == 2:
                    raise

    def button(self, text, timeout=20):
        """Click the enabled button whose text is `text`."""
        xpath = f"//button[normalize-space(.)='{text}' and not(@disabled)]"
        return self._click_fresh((By.XPATH, xpath), timeout)

    def type(self, css, text):
        """Replace the field's text with `text` as a person would (key events, so the UI's
        bindings see every change)."""
        el = self.wait(css)
        el.click()
        el.send_keys(Keys.CONTROL, "a")
        el.send_keys(Keys.BACKSPACE)
        if text:
            el.send_keys(text)
        return el

    def go(self, screen):
        """Open a screen from the sidebar."""
        self.click(f'nav a[href="#{screen}"]')

    def body(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def screenshot(self, name):
        # Two animation frames: WebKit paints after the DOM changed, and a capture taken before
        # then shows the previous screen.
        self.driver.execute_async_script(
            "const done = arguments[0];"
            "requestAnimationFrame(() => requestAnimationFrame(() => done()));"
        )
        path = os.path.join(SHOTS, f"{name}.png")
        self.driver.save_screenshot(path)
        return path

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.driver.quit()
        finally:
            self.proc.terminate()
            self.proc.wait(10)
            # The app and the native driver outlive tauri-driver for a while; a second window
            # on the same data folder would only focus the old one (single instance) and never
            # open. Wait for the processes this App started, and end lingering ones by id.
            for _ in range(2):
                deadline = time.time() + 10
                while any(alive(p) for p in self.family) and time.time() < deadline:
                    time.sleep(0.2)
                for pid in [p for p in self.family if alive(p)]:
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            # The session bus may still list the single-instance name for a moment after the
            # process is gone; a window started then would hand over to nobody and exit.
            deadline = time.time() + 10
            while self.install.instance_name_taken() and time.time() < deadline:
                time.sleep(0.2)


@pytest.fixture
def app_for():
    """Start the real window on `install`. Unless `person` is None, the person using it is
    remembered first (default: the member "founder", added if missing), so the first-run
    prompt does not stand in the way; `test_people.py` answers the prompt itself."""
    apps = []

    def start(install, person="founder"):
        if person is not None:
            install.remember_person(person)
        a = App(install)
        apps.append(a)
        return a

    yield start
    for a in apps:
        a.close()
