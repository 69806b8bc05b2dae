// Drives the dashboard as a person would, in Debian's headless Chromium: submit a task with the
// form, watch its events arrive live, open the pull request it produced, and approve it.
// Usage: node dashboard.mjs <gateway-url> <repository-id>. Prints one JSON line on success.
import { chromium } from "playwright-core";

const [base, repositoryId] = process.argv.slice(2);
if (!base || !repositoryId) {
  console.error("usage: node dashboard.mjs <gateway-url> <repository-id>");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  // As root on a closed network: no sandbox of Chromium's own (the test is the only page),
  // and none of Chromium's background connections.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(120_000);
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
  });
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });

  await page.goto(`${base}/`);
  await page.fill("input[name=repository_id]", repositoryId);
  await page.fill("textarea[name=prompt]", "Fix the bug that makes test_add fail.");
  await page.click("button[type=submit]");
  await page.waitForURL(/#\/tasks\/[0-9a-f-]{36}$/);
  const taskId = page.url().split("/").pop();

  // Live events arrive over the WebSocket until the stream ends with the task.
  const log = page.locator(".log");
  await log.locator(".entry.file_modified", { hasText: "calc.py" }).waitFor();
  await log.locator(".entry.command_executed", { hasText: "pytest" }).first().waitFor();
  await log.locator(".entry.checkpoint_reached", { hasText: "human_approval_required" }).waitFor();
  await log.locator(".entry.closed", { hasText: "task finished" }).waitFor();
  await page.locator("dd .status", { hasText: "completed" }).waitFor();

  // The pull request page shows the fix; approving it records the review.
  await page.click("a[href^='#/pull-requests/']");
  await page.waitForURL(/#\/pull-requests\/[0-9a-f-]{36}$/);
  const pullRequestId = page.url().split("/").pop();
  await page.locator("text=+    return a + b").first().waitFor();
  await page.fill("input[placeholder^='Your name']", "dashboard-test");
  await page.click("button:has-text('Approve')");
  await page.locator(".review", { hasText: "dashboard-test" }).waitFor();
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

  if (problems.length) throw new Error(problems.join("\n"));
  console.log(JSON.stringify({ task_id: taskId, pull_request_id: pullRequestId }));
} finally {
  await browser.close();
}
