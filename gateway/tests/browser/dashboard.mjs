// Drives Debian's Chromium through the dashboard as a person would. Run by
// gateway/tests/dashboard_browser.rs, which starts the cluster and seeds it; settings come
// from the environment (BASE_URL, AGENT_TOKEN, VIEWER_TOKEN, CHROMIUM, SHOTS_DIR).
// Prints one line per step; exits non-zero with the reason at the first failure.
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env("BASE_URL");
const SHOTS = env("SHOTS_DIR");
const TIMEOUT = 30_000;

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function step(name) {
  console.log(`ok - ${name}`);
}

async function login(browser, token, options = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 860 },
    timezoneId: "Europe/Berlin",
    colorScheme: "light",
    ...options,
  });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  await page.goto(`${BASE}/ui`);
  check(new URL(page.url()).pathname === "/ui/login", `not sent to the login page: ${page.url()}`);
  await page.fill("#token", token);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/ui/login") && r.request().method() === "POST"),
    page.click("button[type=submit]"),
  ]);
  await page.waitForLoadState();
  const where = new URL(page.url()).pathname;
  const error = (await page.$(".error")) ? await page.textContent(".error") : "";
  check(where === "/ui", `signing in led to ${where} (POST answered ${response.status()}) ${error}`);
  return { context, page };
}

async function overview(page) {
  const order = await page.$$eval("tr[data-task]", (rows) => rows.map((r) => r.dataset.task));
  for (const t of ["team/nightly-report", "team/sync-inventory", "team/weekly-digest", "team/cleanup"]) {
    check(order.includes(t), `${t} missing from the overview: ${order}`);
  }
  check(order[0] === "team/sync-inventory", `the failed Task is not first: ${order}`);
  const outcome = await page.textContent('[data-outcome-for="team/sync-inventory"]');
  check(outcome.includes("Failed"), `its last run does not show as failed: ${outcome}`);
  const cookieVisible = await page.evaluate(() => document.cookie);
  check(!cookieVisible.includes("ordinaut_session"), "the session cookie is readable by scripts");
  step("signed in; the seeded Tasks are listed with the failed one first");
  await page.screenshot({ path: `${SHOTS}/overview.png` });
}

async function runDetail(page) {
  await Promise.all([
    page.waitForURL(/\/ui\/runs\//),
    page.click('[data-outcome-for="team/sync-inventory"] a'),
  ]);
  const text = await page.textContent("main");
  check(text.includes("upstream answered 503"), "the run page does not show the error");
  check(text.includes("core.fail"), "the run page does not show the failing step");
  step("the failed run's page shows the step and its error");
  await page.screenshot({ path: `${SHOTS}/run-detail.png` });
}

async function keyboard(page) {
  await page.goto(`${BASE}/ui`);
  await page.keyboard.press("j");
  const focused = await page.evaluate(() => document.activeElement?.dataset?.task);
  check(focused === "team/sync-inventory", `j did not focus the first row: ${focused}`);
  await Promise.all([page.waitForURL(/\/ui\/tasks\/team\/sync-inventory/), page.keyboard.press("Enter")]);
  step("j focuses the first row and Enter opens it");
}

async function runNowLive(context, page) {
  await page.goto(`${BASE}/ui/tasks/team/nightly-report`);
  await page.waitForFunction(() => document.querySelector("[data-live-state]")?.textContent.startsWith("Live"));
  await page.evaluate(() => { window.__notReloaded = true; });
  const before = await page.$$eval("tbody[data-live-runs] tr", (rows) => rows.length);
  // Press "Run now" in a second tab; the first one must show the run without reloading.
  const other = await context.newPage();
  await other.goto(`${BASE}/ui/tasks/team/nightly-report`);
  await Promise.all([other.waitForURL(/nightly-report$/), other.click('button[data-action="run-now"]')]);
  const flash = await other.textContent(".flash");
  check(flash.includes("requested"), `no confirmation after run now: ${flash}`);
  await page.waitForFunction(
    (n) => document.querySelectorAll("tbody[data-live-runs] tr").length > n,
    before,
    { timeout: 45_000 },
  );
  check(await page.evaluate(() => window.__notReloaded === true), "the page was reloaded");
  const newest = await page.textContent("tbody[data-live-runs] tr:first-child");
  check(newest.includes("manual"), `the new row is not the manual run: ${newest}`);
  step("run now: the new run appears live on the Task's page");
  await page.screenshot({ path: `${SHOTS}/task.png`, fullPage: true });
  await other.close();
}

async function timeline(page) {
  await page.goto(`${BASE}/ui/timeline?tz=Europe%2FBerlin&at=2027-03-28`);
  const text = await page.textContent("svg.timeline");
  check(text.includes("Sun 28 Mar · 23 h day"), "the spring-forward day is not 23 hours");
  check(text.includes("clocks change: +01:00 → +02:00"), "the clock change is not marked");
  const marks = await page.$$eval("svg.timeline .next", (m) => m.length);
  check(marks > 0, "no upcoming occurrences are drawn");
  step(`the timeline across the DST change draws a 23-hour day and ${marks} occurrences`);
  await page.screenshot({ path: `${SHOTS}/timeline-dst.png` });
}

async function refused(browser) {
  const { context, page } = await login(browser, env("VIEWER_TOKEN"));
  await page.goto(`${BASE}/ui/tasks/team/sync-inventory`);
  check(!(await page.$('button[data-action="run-now"]')), "run now is offered without runs:write");
  // Submit the action anyway, as a crafted form would.
  await Promise.all([
    page.waitForURL(/run-now$/),
    page.evaluate(() => {
      const f = document.createElement("form");
      f.method = "post";
      f.action = "/ui/tasks/team/sync-inventory/run-now";
      const c = document.createElement("input");
      c.name = "csrf";
      c.value = document.querySelector('meta[name="csrf-token"]').content;
      f.append(c);
      document.body.append(f);
      f.submit();
    }),
  ]);
  const text = await page.textContent("main");
  check(text.includes("403"), `not refused: ${text}`);
  check(text.includes("lacks the API scope `runs:write`"), `the refusal does not name the scope: ${text}`);
  step("an action outside the token's scopes is refused with the missing scope named");
  await context.close();
}

async function phoneDark(browser) {
  const { context, page } = await login(browser, env("AGENT_TOKEN"), {
    viewport: { width: 390, height: 844 },
    colorScheme: "dark",
    isMobile: true,
  });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(bg !== "rgb(255, 255, 255)", `dark mode not applied: ${bg}`);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 400, `the overview is ${wide}px wide on a 390px phone`);
  step("dark mode on a phone-sized screen, no sideways scrolling");
  await page.screenshot({ path: `${SHOTS}/phone-dark.png` });
  await context.close();
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const { context, page } = await login(browser, env("AGENT_TOKEN"));
  await overview(page);
  await runDetail(page);
  await keyboard(page);
  await runNowLive(context, page);
  await timeline(page);
  await context.close();
  await refused(browser);
  await phoneDark(browser);
  console.log("browser: all steps passed");
} catch (e) {
  console.error(`not ok - ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
