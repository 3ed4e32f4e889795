// Opens the verifier page in headless Chromium (Debian's), drops each given file on it through
// its file input, and prints one JSON line per file: the verdict the page shows, the problems
// it lists, and every network request the page made (there must be none).
// Usage: node run.mjs PAGE.html FILE...
import { chromium } from "playwright-core";

const [page_path, ...files] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.MANDATE_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-networking"],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requests = [];
  // Every request the page makes, file:// included, except the page itself.
  page.on("request", (r) => {
    if (r.url() !== "file://" + page_path) requests.push(r.url());
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  await page.goto("file://" + page_path);
  for (const file of files) {
    await page.evaluate(() => {
      delete document.body.dataset.verdict;
    });
    await page.setInputFiles("#file", file);
    await page.waitForFunction(() => document.body.dataset.verdict, null, { timeout: 600000 });
    const shown = await page.evaluate(() => ({
      verdict: document.body.dataset.verdict,
      headline: document.getElementById("headline").textContent,
      summary: document.getElementById("summary").textContent,
      text: document.getElementById("text").textContent,
    }));
    if (process.env.MANDATE_SCREENSHOT) {
      await page.screenshot({ path: process.env.MANDATE_SCREENSHOT + "-" + files.indexOf(file) + ".png", fullPage: true });
    }
    console.log(JSON.stringify({ file, ...shown, requests, errors }));
  }
  const heap = await page.evaluate(() => (performance.memory ? performance.memory.usedJSHeapSize : 0));
  console.log(JSON.stringify({ done: true, requests, errors, heap }));
} finally {
  await browser.close();
}
