// Drives the dashboard as a person would, in Debian's headless Chromium: submit a task with the
// form, watch its events arrive live, open the pull request it produced, and approve it.
// Usage: node dashboard.mjs <gateway-url> <repository-id>, with the accounts in the environment
// (DEVELOPER_PASSWORD for `developer`, REVIEWER_PASSWORD for `reviewer`, VIEWER_PASSWORD for
// `viewer`). Prints one JSON line on success.
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
    // Before signing in, "who am I" is expected to answer 401.
    const expected = response.status() === 401 && response.url().endsWith("/api/v1/auth/me");
    if (response.status() >= 400 && !expected) problems.push(`HTTP ${response.status()} for ${response.url()}`);
  });

  const signIn = async (user, password) => {
    await page.locator("form.signin").waitFor();
    await page.fill("input[name=username]", user);
    await page.fill("input[name=password]", password);
    await page.click("form.signin button[type=submit]");
    await page.locator("#whoami .user", { hasText: user }).waitFor();
  };
  const signOut = async () => {
    await page.click("#whoami button:has-text('Sign out')");
    await page.locator("form.signin").waitFor();
  };
  page.on("console", (message) => {
    // Chromium logs every failed load; the response handler above judges those by URL.
    const load = /Failed to load resource/.test(message.text());
    if (message.type() === "error" && !load) problems.push(`console error: ${message.text()}`);
  });

  // Nothing shows before signing in; a Viewer reads but gets no task form.
  await page.goto(`${base}/`);
  await signIn("viewer", process.env.VIEWER_PASSWORD);
  await page.locator("#whoami .role", { hasText: "viewer" }).waitFor();
  await page.locator("h2", { hasText: "Recent tasks" }).waitFor();
  if (await page.locator("textarea[name=prompt]").count()) throw new Error("a Viewer was shown the task form");
  await signOut();

  await signIn("developer", process.env.DEVELOPER_PASSWORD);
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

  // The pull request page shows the fix; a second person approves it (the author may not).
  await page.click("a[href^='#/pull-requests/']");
  await page.waitForURL(/#\/pull-requests\/[0-9a-f-]{36}$/);
  const pullRequestId = page.url().split("/").pop();
  await page.locator("text=+    return a + b").first().waitFor();
  await signOut();
  await signIn("reviewer", process.env.REVIEWER_PASSWORD);
  await page.locator("text=+    return a + b").first().waitFor();
  await page.locator("text=Reviewing as reviewer").waitFor();
  await page.click("button:has-text('Approve')");
  await page.locator(".review", { hasText: "reviewer" }).waitFor();
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

  if (problems.length) throw new Error(problems.join("\n"));
  console.log(JSON.stringify({ task_id: taskId, pull_request_id: pullRequestId }));
} finally {
  await browser.close();
}
