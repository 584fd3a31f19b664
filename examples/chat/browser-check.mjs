// Browser check of the chat example: a real Herald server, the real page in
// headless Chromium, two (then three) people chatting. Not run in CI (no
// Chromium there); run it by hand after changing the page or the config.
//
//   cargo build --release
//   cd examples/chat
//   npm install --no-save --no-package-lock playwright-core   # node_modules is git-ignored
//   node browser-check.mjs
//
// Needs Chromium at /usr/bin/chromium (Debian: apt-get install chromium), or
// CHROMIUM=/path/to/chrome; never `npx playwright install`. HERALD=/path/to/herald
// picks another server binary (default: target/release/herald).
//
// It starts `herald serve --config examples/chat/herald.toml` on a free
// loopback port over a temporary data directory, opens the page the server
// serves (http://<server>/app/, the config's static_dir) as Ann and Bob,
// checks presence (join, away, leave), sending and receiving (text with
// markup stays text), history for a late joiner, a server restart
// (reconnect and rejoin), and saves screenshots to /tmp/herald-chat-*.png.
// It stops only the server it started.

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const herald = process.env.HERALD || join(root, "target/release/herald");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 10_000;

const temps = [];
const temp = (prefix) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
};

function freePort() {
  return new Promise((ok, fail) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
    probe.on("error", fail);
  });
}

// ---- The server (only the one started here is ever stopped) --------------

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const dataDir = temp("herald-chat-data-");
let server = null;

async function startServer() {
  const child = spawn(herald, ["serve", "--config", join(here, "herald.toml"),
    "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr.on("data", (chunk) => { log += chunk; });
  child.on("exit", (code) => { if (code) console.error(`herald exited with ${code}:\n${log}`); });
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    try {
      if ((await fetch(base + "/healthz")).ok) break;
    } catch { /* not yet */ }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error("herald did not start:\n" + log);
    await new Promise((r) => setTimeout(r, 100));
  }
  server = child;
}

async function stopServer() {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM"); // this child, by its pid
  await exited;
}

// ---- Checks ----------------------------------------------------------------

let steps = 0;
// Runs one check, printed TAP-style; a failure names the check.
async function step(what, check) {
  steps += 1;
  try {
    await check();
  } catch (e) {
    throw new Error(`not ok ${steps} - ${what}\n# ${e.message.split("\n")[0]}`);
  }
  console.log(`ok ${steps} - ${what}`);
}

const pageUrl = `${base}/app/`;
const consoleErrors = [];
const pages = new Map();

async function open(context, name) {
  const page = await context.newPage();
  pages.set(name, page);
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`${name}: ${m.text()}`); });
  page.on("pageerror", (e) => consoleErrors.push(`${name}: ${e.message}`));
  await page.goto(pageUrl);
  await page.fill("#name", name);
  await page.fill("#room", "lobby");
  await page.fill("#server", base);
  await page.click("#join button");
  await waitText(page, "#status", "online");
  return page;
}

const waitText = (page, selector, text) =>
  page.waitForFunction(([s, t]) => document.querySelector(s)?.textContent === t, [selector, text]);

const members = (page) => page.$$eval("#members li", (items) => items.map((li) => ({
  text: li.textContent, away: li.querySelector(".dot").classList.contains("away"),
})));

// The member list (in join order, which a reconnection may change) holds
// exactly `expected`.
async function waitMembers(page, expected) {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll("#members li")].map((li) => li.textContent);
    return JSON.stringify(got.sort()) === JSON.stringify(want.sort());
  }, expected);
}

const message = (page, text) => page.locator("#log .msg", { hasText: text });
const notice = (page, text) => page.locator("#log .notice", { hasText: text });

async function sendMessage(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

let browser, ann, bob;
try {
  await step(`herald serves the example's config on ${base}`, startServer);

  browser = await chromium.launchPersistentContext(temp("herald-chat-chromium-"), {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 960, height: 600 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  console.log(`# page: ${pageUrl}`);

  await step("Ann and Bob joined #lobby", async () => {
    ann = await open(browser, "Ann");
    bob = await open(browser, "Bob");
  });

  await step("both see who is online; Ann was told Bob joined", async () => {
    await waitMembers(ann, ["Ann(you)", "Bob"]);
    await waitMembers(bob, ["Ann", "Bob(you)"]);
    await notice(ann, "Bob joined.").waitFor();
  });

  await step("Bob's message reached Ann (and Bob) through the table and the route, as text", async () => {
    const tricky = `Hello Ann <img src=x onerror="window.pwned=1"> & <b>bold</b>`;
    await sendMessage(bob, tricky);
    await message(ann, "Hello Ann").waitFor();
    const shown = await message(ann, "Hello Ann").evaluate((el) => ({
      text: el.lastChild.textContent, elements: el.querySelectorAll("img, b b, script").length,
      pwned: Boolean(window.pwned),
    }));
    if (shown.text !== tricky || shown.elements || shown.pwned) throw new Error(`not escaped: ${JSON.stringify(shown)}`);
    await message(bob, "Hello Ann").waitFor();
  });

  await step("Ann's reply reached Bob", async () => {
    await sendMessage(ann, "Hi Bob! Ça va ?");
    await message(bob, "Hi Bob!").waitFor();
  });

  await step("Bob's tab went to the background: Ann sees him away (member_updated)", async () => {
    await bob.evaluate(() => {
      Object.defineProperty(document, "hidden", { value: true, configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await ann.waitForFunction(() => [...document.querySelectorAll("#members li")]
      .some((li) => li.textContent === "Bob" && li.querySelector(".dot.away")));
  });

  await step("Cy loaded the last messages over REST; closing her tab was announced", async () => {
    const cy = await open(browser, "Cy");
    await message(cy, "Hello Ann").waitFor();
    await message(cy, "Hi Bob!").waitFor();
    const order = await cy.$$eval("#log > div", (els) => els.map((el) => el.className.split(" ")[0]));
    if (order.join() !== "msg,msg,notice") throw new Error(`history should come before the join notice: ${order}`);
    await waitMembers(ann, ["Ann(you)", "Bob", "Cy"]);
    await cy.close();
    await notice(ann, "Cy disconnected.").waitFor();
    await waitMembers(ann, ["Ann(you)", "Bob"]);
  });

  await step("after a server restart both reconnected, rejoined and chat on", async () => {
    const restart = Date.now();
    await stopServer();
    await notice(ann, "Connection lost.").waitFor();
    await startServer();
    // The pages back off between attempts: allow for a few of them.
    const back = { timeout: 4 * TIMEOUT };
    await ann.waitForFunction(() => document.querySelector("#status").textContent === "online", null, back);
    await bob.waitForFunction(() => document.querySelector("#status").textContent === "online", null, back);
    console.log(`# back online ${Date.now() - restart} ms after the restart began`);
    await notice(ann, "Reconnected to #lobby.").waitFor();
    await waitMembers(ann, ["Ann(you)", "Bob"]);
    await sendMessage(bob, "still here");
    await message(ann, "still here").waitFor();
  });

  await step("screenshots: /tmp/herald-chat-ann.png, /tmp/herald-chat-bob.png", async () => {
    for (const [name, page] of [["ann", ann], ["bob", bob]]) {
      await page.screenshot({ path: `/tmp/herald-chat-${name}.png` });
    }
    console.log("# members seen by Ann:", JSON.stringify(await members(ann)));
  });
  if (consoleErrors.length) console.log("# console errors:", consoleErrors);
} catch (e) {
  console.error(e.message);
  for (const [name, page] of pages) {
    if (page.isClosed()) continue;
    const seen = await page.evaluate(() => ({
      status: document.querySelector("#status").textContent,
      notices: [...document.querySelectorAll("#log .notice")].map((n) => n.textContent),
    }));
    console.error(`# ${name}: status ${JSON.stringify(seen.status)}, notices ${JSON.stringify(seen.notices)}`);
    await page.screenshot({ path: `/tmp/herald-chat-failed-${name.toLowerCase()}.png` });
  }
  if (consoleErrors.length) console.error("# console errors:", consoleErrors);
  process.exitCode = 1;
} finally {
  await browser?.close();
  await stopServer();
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
}
