"""Measurements of the desktop app for docs/BENCHMARKS.md ("Desktop app"); not a test suite.

Run through tests/e2e/bench_desktop.sh, which seeds an installation with 1,000 agents and
1,000,000 audit events, builds the release app and starts this under Xvfb with a private
keychain. Prints one JSON line per measurement.
"""

import json
import os
import statistics
import subprocess
import time

from selenium.webdriver.common.by import By

from conftest import App, Install

DATA = os.environ["MANDATE_BENCH_DATA"]

FRAMES_JS = """
const done = arguments[arguments.length - 1];
const mode = arguments[0];
const el = document.querySelector(arguments[1]);
const frames = [];
let n = 0, last = 0;
const total = 300;
function step(t) {
  if (last) frames.push(t - last);
  last = t;
  if (mode === "flick") el.scrollTop += 400;
  else if (mode === "jump") el.scrollTop = Math.floor(Math.random() * (el.scrollHeight - el.clientHeight));
  if (++n < total) requestAnimationFrame(step); else done(frames);
}
requestAnimationFrame(step);
"""


def report(name, **values):
    print(json.dumps({"measure": name, **values}), flush=True)


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p / 100))], 2)


def rss_kib():
    out = subprocess.run(["ps", "-eo", "rss=,comm="], capture_output=True, text=True).stdout
    by = {}
    for line in out.splitlines():
        rss, comm = line.split(None, 1)
        if comm.startswith(("mandate-desktop", "WebKitWebProces", "WebKitNetworkPr")):
            by[comm] = by.get(comm, 0) + int(rss)
    return by


def test_measure(tmp_path):
    install = Install(str(tmp_path))
    install.data_dir = DATA
    install.env["MANDATE_DATA_DIR"] = DATA
    # The benchmark log's first member is the person (no first-run prompt over the list).
    install.remember_person(install.cli_json("member", "list")[0]["name"])

    t0 = time.monotonic()
    app = App(install)
    try:
        app.wait("tr[data-agent]", timeout=120)
        launch = time.monotonic() - t0
        rows = len(app.driver.find_elements(By.CSS_SELECTOR, "tr[data-agent]"))
        fcp = app.driver.execute_script(
            "const p = performance.getEntriesByName('first-contentful-paint')[0];"
            "return p ? p.startTime : null;"
        )
        report("launch_to_agent_list", seconds=round(launch, 2), rows=rows, first_contentful_paint_ms=fcp)

        time.sleep(15)
        by = rss_kib()
        report("idle_rss_kib", total=sum(by.values()), **by)

        app.driver.set_script_timeout(300)
        agents_list = '[data-testid="agents-list"]'
        for mode in ("idle", "flick", "jump"):
            frames = app.driver.execute_async_script(FRAMES_JS, mode, agents_list)
            report(
                f"agents_scroll_{mode}",
                frames=len(frames),
                p50_ms=pct(frames, 50),
                p95_ms=pct(frames, 95),
                max_ms=round(max(frames), 2),
                rendered_rows=len(app.driver.find_elements(By.CSS_SELECTOR, "tr[data-agent]")),
            )

        app.go("audit")
        app.wait('[data-testid="audit-list"] [data-seq]', timeout=60)
        total = app.driver.execute_script(
            "return document.querySelector('[data-testid=\"audit-list\"]').scrollHeight"
        )
        for mode in ("idle", "flick", "jump"):
            frames = app.driver.execute_async_script(FRAMES_JS, mode, '[data-testid="audit-list"]')
            report(
                f"audit_scroll_{mode}",
                frames=len(frames),
                p50_ms=pct(frames, 50),
                p95_ms=pct(frames, 95),
                p99_ms=pct(frames, 99),
                max_ms=round(max(frames), 2),
                mean_ms=round(statistics.fmean(frames), 2),
                scroll_height_px=total,
                rendered_rows=len(app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="audit-list"] [role="listitem"]')),
            )
    finally:
        app.close()
