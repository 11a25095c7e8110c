// The operator console (`/console`) in real headless Chromium (Debian's
// `chromium`, driven by puppeteer-core): sign in, a scripted webhook and a
// send appear in Webhooks and Messages with their timelines, the Send form
// sends, a wrong token shows the sign-in again, no console error, no CSP
// violation; a screenshot of each view; and `chromium --dump-dom` shows
// the Overview with figures without a driver.
//
//   node console.test.mjs serve  WATS_BIN COMPONENT OUT_DIR
//   node console.test.mjs worker ROOT OUT_DIR        (wrangler dev --local)
//
// Every process it starts is its own group, killed at the end. Servers bind
// 127.0.0.1 on free ports.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import puppeteer from "puppeteer-core";

const CHROMIUM = process.env.WATS_CHROMIUM ?? "/usr/bin/chromium";
const PHONE_ID = "100000000000001";
const SETTINGS = {
  WATS_ACCESS_TOKEN: "console-access-token",
  WATS_APP_SECRET: "console-app-secret",
  WATS_VERIFY_TOKEN: "console-verify-token",
  WATS_SERVICE_BEARER_TOKEN: "console-service-token",
  WATS_PHONE_NUMBER_ID: PHONE_ID,
};
const [target, ...args] = process.argv.slice(2);
const groups = [];
const cleanups = [];

function stopAll() {
  for (const child of groups) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
  }
  for (const cleanup of cleanups) cleanup();
}
process.on("exit", stopAll);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

function start(command, argv, options) {
  const child = spawn(command, argv, { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  groups.push(child);
  return child;
}

// Resolves with the first match of `pattern` in the child's output.
function waitFor(child, pattern, what) {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${seen.slice(-2000)}`)), 180_000);
    const look = (chunk) => {
      seen += chunk;
      const match = pattern.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    };
    child.stdout.on("data", look);
    child.stderr.on("data", look);
    child.on("exit", () => reject(new Error(`${what} exited:\n${seen.slice(-2000)}`)));
  });
}

// A Graph stand-in for the Worker, which has no dry-run Graph of its own.
async function fakeGraph() {
  let next = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      next += 1;
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ messaging_product: "whatsapp", contacts: [], messages: [{ id: `wamid.CONSOLEOUT${next}` }] }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

// The environment without the caller's WATS_* settings (the run's marker,
// which finds leftover processes, stays).
function withoutSettings() {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("WATS_")));
}

async function startServe([wats, component]) {
  const child = start(wats, ["serve", "--component", component, "--port", "0", "--memory", "--dry-run"], {
    env: withoutSettings(),
  });
  const [, base] = await waitFor(child, /listening on (http:\/\/127\.0\.0\.1:\d+)/, "wats serve");
  // Dry-run: the synthetic credentials README.md lists.
  return { base, token: "dry-run-service-token", appSecret: "dry-run-app-secret" };
}

async function startWorker([root]) {
  const graph = await fakeGraph();
  const state = mkdtempSync(path.join(tmpdir(), "wats-console-"));
  cleanups.push(() => rmSync(state, { recursive: true, force: true }));
  const port = await new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const vars = Object.entries({ ...SETTINGS, WATS_GRAPH_BASE_URL: graph }).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const wrangler = path.join(root, "hosts/cloudflare/node_modules/.bin/wrangler");
  const child = start(
    wrangler,
    ["dev", "--local", "--ip", "127.0.0.1", "--port", String(port), "--config", path.join(root, "wrangler.toml"),
      "--persist-to", state, "--show-interactive-dev-session=false", ...vars],
    { cwd: root, env: { ...withoutSettings(), WRANGLER_SEND_METRICS: "false", WATS_WORKER_PREBUILT: "1" } },
  );
  await waitFor(child, /Ready on http:\/\/127\.0\.0\.1/, "wrangler dev");
  return { base: `http://127.0.0.1:${port}`, token: SETTINGS.WATS_SERVICE_BEARER_TOKEN, appSecret: SETTINGS.WATS_APP_SECRET };
}

function change(value) {
  return {
    object: "whatsapp_business_account",
    entry: [{ id: "200000000000001", changes: [{ field: "messages", value: {
      messaging_product: "whatsapp",
      metadata: { display_phone_number: "15550000000", phone_number_id: PHONE_ID },
      ...value,
    } }] }],
  };
}

async function deliver(service, body) {
  const raw = JSON.stringify(body);
  const signature = `sha256=${createHmac("sha256", service.appSecret).update(raw).digest("hex")}`;
  const response = await fetch(`${service.base}/webhooks/whatsapp`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signature },
    body: raw,
  });
  assert.equal(response.status, 200, await response.text());
}

const texts = async (page, selector) => page.$$eval(selector, (nodes) => nodes.map((n) => n.textContent));

async function view(page, name) {
  await page.click(`nav button[data-view="${name}"]`);
  await page.waitForSelector(`#${name}:not([hidden])`);
}

async function main() {
  const out = args.at(-1);
  mkdirSync(out, { recursive: true });
  const service = target === "worker" ? await startWorker(args) : await startServe(args);
  const shot = (name) => page.screenshot({ path: path.join(out, `${target}-${name}.png`), fullPage: true });

  // Without a driver: the page renders its Overview from the token in the
  // fragment.
  const { stdout: dumped } = await promisify(execFile)(
    CHROMIUM,
    ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom", `${service.base}/console#token=${service.token}`],
    { maxBuffer: 8 << 20 },
  );
  assert.match(dumped, /<span>Uptime<\/span><b>\d+ min \d+ s<\/b>/, "the Overview with figures in --dump-dom");
  assert.doesNotMatch(dumped, new RegExp(service.token), "the token leaves the page");

  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  cleanups.unshift(() => browser.process()?.kill("SIGKILL"));
  const page = await browser.newPage();
  const errors = [];
  page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.evaluateOnNewDocument(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (event) => window.__violations.push(event.violatedDirective));
  });
  await page.setViewport({ width: 1100, height: 900 });

  // `/` leads to the console; sign in from the keyboard.
  await page.goto(`${service.base}/`);
  assert.equal(new URL(page.url()).pathname, "/console");
  await page.waitForSelector("#signin:not([hidden])");
  await shot("signin");
  await page.focus("#token");
  await page.keyboard.type(service.token);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#overview:not([hidden]) .tile");
  assert.equal(await page.evaluate(() => sessionStorage.length), 1, "the token is in sessionStorage only");
  assert.equal(await page.evaluate(() => localStorage.length), 0);

  // A scripted webhook: an inbound text message.
  await deliver(service, change({
    contacts: [{ profile: { name: "Console" }, wa_id: "15550001111" }],
    messages: [{ from: "15550001111", id: "wamid.CONSOLEIN1", timestamp: "1765000000", type: "text", text: { body: "CANARY-CONSOLE-TEXT" } }],
  }));

  // The Send form sends, with an Idempotency-Key filled in.
  await view(page, "send");
  assert.ok((await page.$eval("#send-key", (input) => input.value)).length >= 32, "an Idempotency-Key is filled in");
  await page.type("#send-to", "15550002222");
  await page.type("#send-text", "hello from the console");
  await page.click("#send-form button[type=submit]");
  await page.waitForFunction(() => /^200\n/.test(document.getElementById("send-answer").textContent));
  const answer = JSON.parse((await page.$eval("#send-answer", (node) => node.textContent)).replace(/^200\n/, ""));
  const sent = answer.messages[0].id;
  await shot("send");

  // Meta's statuses for the sent message: delivered, then read.
  await deliver(service, change({ statuses: [
    { id: sent, status: "delivered", timestamp: "1765000010", recipient_id: "15550002222" },
    { id: sent, status: "read", timestamp: "1765000020", recipient_id: "15550002222" },
  ] }));

  await view(page, "webhooks");
  await page.waitForSelector("#webhook-rows tr td");
  const webhookRows = await page.$$eval("#webhook-rows tr", (rows) => rows.map((row) => [...row.cells].map((c) => c.textContent)));
  assert.equal(webhookRows.length, 2, JSON.stringify(webhookRows));
  // Newest first: the statuses (2 updates, 2 accepted), then the message.
  assert.deepEqual(webhookRows[0].slice(1), ["2", "status", "2", "0", "0", "200"]);
  assert.deepEqual(webhookRows[1].slice(1), ["1", "message", "1", "0", "0", "200"]);
  await shot("webhooks");

  await view(page, "messages");
  await page.waitForSelector("#message-rows tr.pick");
  const rows = await page.$$eval("#message-rows tr.pick", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  const outbound = rows.find((cells) => cells[1] === "outbound");
  const inbound = rows.find((cells) => cells[1] === "inbound");
  assert.ok(outbound && inbound, JSON.stringify(rows));
  assert.equal(outbound[5], "sentdeliveredread", "the status timeline sent → delivered → read");
  assert.equal(outbound[4], "••••2222", "numbers masked by default");
  assert.equal(inbound[3], "••••1111");
  assert.deepEqual(await texts(page, "#message-rows tr.pick:first-child .step"), ["sent", "delivered", "read"]);
  await shot("messages");
  await page.click("#reveal");
  await page.waitForFunction(() => document.querySelector("#message-rows").textContent.includes("15550002222"));
  await page.click("#reveal");
  // Search by phone number.
  await page.type("#search", "15550002222");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelectorAll("#message-rows tr.pick").length === 1);
  assert.equal(await page.$eval("#message-rows tr.pick td:nth-child(2)", (td) => td.textContent), "outbound");
  await page.$eval("#search", (input) => (input.value = ""));
  // Search by message id, and open it from the keyboard.
  await page.type("#search", "wamid.CONSOLEIN1");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll("#message-rows tr.pick");
    return rows.length === 1 && rows[0].cells[1].textContent === "inbound";
  });
  await page.focus("#message-rows tr.pick");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#message-detail:not([hidden])");
  const detail = await page.$eval("#message-detail", (node) => node.textContent);
  assert.match(detail, /"direction": "inbound"/);
  assert.doesNotMatch(detail, /CANARY-CONSOLE-TEXT|15550001111/, "no text, and ids masked");

  await view(page, "events");
  await page.waitForFunction(() => document.getElementById("endpoints").textContent.length > 0);
  await shot("events");
  await view(page, "outbox");
  await page.waitForSelector("#outbox-rows tr td");
  await shot("outbox");
  await view(page, "overview");
  // The tiles drawn at sign-in stay until this refresh lands.
  await page.waitForFunction(() => /Webhook deliveries2/.test(document.getElementById("tiles").textContent));
  const tiles = await page.$eval("#tiles", (node) => node.textContent);
  assert.match(tiles, /Webhook deliveries2/, tiles);
  assert.match(tiles, /message: 1/);
  await shot("overview");

  // Readable at 360 px: nothing wider than the screen but the tables'
  // own scroll boxes.
  await page.setViewport({ width: 360, height: 800 });
  await view(page, "messages");
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), "no page-wide horizontal scroll at 360 px");
  await shot("messages-360");
  await page.setViewport({ width: 1100, height: 900 });

  assert.deepEqual(errors, [], "no console error");
  assert.deepEqual(await page.evaluate(() => window.__violations), [], "no CSP violation");
  const policy = (await fetch(`${service.base}/console`)).headers.get("content-security-policy");
  assert.match(policy, /script-src 'sha256-[^']+'; style-src 'sha256-[^']+'/);
  assert.match(policy, /frame-ancestors 'none'/);

  // A wrong token: the sign-in again, saying so.
  await page.evaluate(() => sessionStorage.setItem("wats.token", "not-the-token"));
  await page.reload();
  await page.waitForSelector("#signin:not([hidden])");
  assert.match(await page.$eval("#signin-error", (node) => node.textContent), /not accepted/);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "the wrong token is dropped");
  await shot("wrong-token");
  await browser.close();
  console.log(`console (${target}): every check passed; screenshots in ${out}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
