// Measures the verifier page on one large file for scripts/bench-verify: opens the page in
// headless Chromium (Debian's), gives it the file through its file input (Chromium reads it
// from disk; nothing crosses the DevTools protocol) and prints one JSON line: the verdict, the
// seconds from choosing the file to the verdict, and the peak resident memory (VmHWM, from
// /proc) of the tab's renderer process and of the browser process that reads the file.
// Usage: node bench.mjs PAGE.html FILE
import { readFileSync, readdirSync } from "node:fs";
import { chromium } from "playwright-core";

const [page_path, file] = process.argv.slice(2);

/// The processes descending from `root`: pid -> command line.
function descendants(root) {
  const parent = new Map();
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      parent.set(Number(pid), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {}
  }
  const out = new Map();
  for (const pid of parent.keys()) {
    for (let p = pid; p > 1; p = parent.get(p) ?? 0) {
      if (p === root) {
        try {
          out.set(pid, readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" "));
        } catch {}
        break;
      }
    }
  }
  return out;
}

function peakKiB(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

const browser = await chromium.launch({
  executablePath: process.env.MANDATE_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  await page.goto("file://" + page_path);
  const started = performance.now();
  await page.setInputFiles("#file", file, { timeout: 600000 });
  await page.waitForFunction(() => document.body.dataset.verdict, null, {
    timeout: 3600000,
    polling: 500,
  });
  const seconds = (performance.now() - started) / 1000;
  const shown = await page.evaluate(() => ({
    verdict: document.body.dataset.verdict,
    headline: document.getElementById("headline").textContent,
  }));
  // Chromium is this process's child: the browser process has no --type, the tab's renderer
  // has --type=renderer (one tab, so one renderer; the largest is taken if there are more).
  let renderer = 0;
  let main = 0;
  for (const [pid, cmd] of descendants(process.pid)) {
    if (cmd.includes("--type=renderer")) renderer = Math.max(renderer, peakKiB(pid));
    else if (!cmd.includes("--type=") && /chrom/.test(cmd)) main = Math.max(main, peakKiB(pid));
  }
  console.log(
    JSON.stringify({ ...shown, seconds, renderer_peak_kib: renderer, browser_peak_kib: main }),
  );
} finally {
  await browser.close();
}
