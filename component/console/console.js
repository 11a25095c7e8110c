"use strict";
// The operator console: every figure comes from the service's own routes,
// with the bearer token kept in this tab's sessionStorage only. Values
// reach the page through textContent, never as markup.
const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const API = meta("wats-api");
const WEBHOOK = meta("wats-webhook");
const KEY = "wats.token";
const views = ["overview", "webhooks", "messages", "events", "outbox", "send"];
// How many pages of 100 messages a search by phone or user id reads.
const SEARCH_PAGES = 5;
let current = "overview";
let timer = null;
const samples = [];
let lastTotal = null;
let messages = [];

// A token in the fragment (#token=…) signs in, and leaves the address bar.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  sessionStorage.setItem(KEY, fragment.get("token"));
  history.replaceState(null, "", location.pathname + location.search);
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell ?? "—";
    tr.append(td);
  }
  return tr;
}

function fill(tbody, rows, empty) {
  tbody.replaceChildren(...rows);
  if (rows.length === 0) {
    const td = el("td", empty, "muted");
    td.colSpan = tbody.closest("table").querySelectorAll("th").length;
    tbody.append(el("tr"));
    tbody.lastChild.append(td);
  }
}

// Phone numbers and user ids: the last four characters unless revealed.
function mask(value) {
  if (value === null || value === undefined || value === "") return "—";
  const text = String(value);
  if ($("reveal").checked) return text;
  return text.length <= 4 ? "••••" : `••••${text.slice(-4)}`;
}

function time(value) {
  if (!value) return "—";
  const date = typeof value === "number" ? new Date(value) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function token() {
  return sessionStorage.getItem(KEY);
}

class SignedOut extends Error {}

async function api(path, init = {}) {
  const headers = { authorization: `Bearer ${token()}`, ...(init.headers ?? {}) };
  const response = await fetch(path.startsWith("/") ? path : `${API}/${path}`, { ...init, headers });
  // A protected route answers a wrong token as the catch-all 404.
  if (response.status === 404 || response.status === 401) {
    const status = await fetch("/status", { headers: { authorization: `Bearer ${token()}` } });
    if (!status.ok) throw new SignedOut();
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: response.status, ok: response.ok, body };
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  clearInterval(timer);
  timer = null;
  for (const id of [...views, "nav", "signout", "reveal-box"]) $(id).hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message ?? "";
  $("token").focus();
}

async function signIn(candidate) {
  const status = await fetch("/status", { headers: { authorization: `Bearer ${candidate}` } });
  if (!status.ok) return false;
  sessionStorage.setItem(KEY, candidate);
  $("signin").hidden = true;
  for (const id of ["nav", "signout", "reveal-box"]) $(id).hidden = false;
  show(current);
  return true;
}

function show(view) {
  current = view;
  for (const name of views) $(name).hidden = name !== view;
  for (const button of $("nav").querySelectorAll("button")) {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  clearInterval(timer);
  timer = null;
  refresh().catch(failed);
  if (view === "overview") timer = setInterval(() => refresh().catch(failed), 5000);
}

function failed(error) {
  if (error instanceof SignedOut) signOut("That token was not accepted. Sign in again.");
}

async function refresh() {
  const loaders = { overview, webhooks, messages: loadMessages, events, outbox, send: prepareSend };
  await loaders[current]();
}

// Prometheus text: name, labels and value of each sample.
function parseMetrics(text) {
  const out = [];
  for (const line of String(text).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    out.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return out;
}

function sumBy(samples, name, label, where = () => true) {
  const totals = {};
  for (const sample of samples) {
    if (sample.name !== name || !where(sample.labels)) continue;
    const key = label ? sample.labels[label] : "all";
    totals[key] = (totals[key] ?? 0) + sample.value;
  }
  return totals;
}

// A quantile of every request's duration, from the cumulative buckets.
function quantile(samples, q) {
  const buckets = sumBy(samples, "http_request_duration_seconds_bucket", "le");
  const bounds = Object.keys(buckets).sort((a, b) => (a === "+Inf") - (b === "+Inf") || Number(a) - Number(b));
  const count = buckets["+Inf"] ?? 0;
  if (!count) return null;
  const bound = bounds.find((le) => buckets[le] >= q * count);
  return bound === "+Inf" ? "> 10 s" : `≤ ${Number(bound) * 1000} ms`;
}

function tile(title, value, detail, className) {
  const box = el("div", null, "tile");
  box.append(el("span", title), el("b", value, className));
  if (detail instanceof Node) box.append(detail);
  else if (detail) box.append(el("span", detail));
  return box;
}

function list(totals) {
  const ul = el("ul");
  const entries = Object.entries(totals).sort((a, b) => b[1] - a[1]);
  for (const [key, value] of entries) ul.append(el("li", `${key}: ${value}`));
  if (entries.length === 0) ul.append(el("li", "none yet"));
  return ul;
}

function uptime(seconds) {
  const s = Number(seconds) || 0;
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

async function overview() {
  const [health, ready, status, metrics] = await Promise.all([
    fetch("/healthz").then((r) => r.ok),
    fetch("/readyz").then(async (r) => ({ ok: r.ok, body: await r.json().catch(() => null) })),
    api("/status"),
    api("/metrics"),
  ]);
  const samplesNow = parseMetrics(metrics.body);
  const webhook = (labels) => labels.route === WEBHOOK && labels.method === "POST";
  const deliveries = sumBy(samplesNow, "http_requests_total", "status_class", webhook);
  const total = Object.values(sumBy(samplesNow, "http_requests_total")).reduce((a, b) => a + b, 0);
  const graphFailures = sumBy(samplesNow, "graph_operations_total", "outcome", (l) => l.outcome !== "success");
  const failures = Object.values(graphFailures).reduce((a, b) => a + b, 0);
  const readiness = ready.ok ? "ready" : (ready.body?.error?.message ?? "not ready");
  $("tiles").replaceChildren(
    tile("Health", health ? "ok" : "down", null, health ? "ok" : "bad"),
    tile("Readiness", ready.ok ? "ready" : "not ready", ready.ok ? null : readiness, ready.ok ? "ok" : "bad"),
    tile("Uptime", uptime(status.body?.uptimeSeconds)),
    tile("Numbers", status.body?.phoneNumbers ?? "—", "configured"),
    tile("Webhook deliveries", Object.values(deliveries).reduce((a, b) => a + b, 0), list(deliveries)),
    tile("Updates by kind", "", list(sumBy(samplesNow, "webhook_normalization_total", "update_kind", (l) => l.outcome === "dispatched"))),
    tile("Sends by outcome", "", list(sumBy(samplesNow, "send_outcomes_total", "outcome"))),
    tile("Graph failures", failures, list(graphFailures), failures > 0 ? "warn" : undefined),
    tile("Request time p50", quantile(samplesNow, 0.5) ?? "—"),
    tile("Request time p99", quantile(samplesNow, 0.99) ?? "—"),
  );
  if (lastTotal !== null) samples.push(Math.max(0, total - lastTotal));
  lastTotal = total;
  if (samples.length > 60) samples.shift();
  const peak = Math.max(1, ...samples);
  const points = samples.map((value, i) => `${(i * 300) / 59},${58 - (value / peak) * 56}`);
  $("line").setAttribute("points", points.join(" "));
}

async function webhooks() {
  const { body } = await api("webhooks/deliveries?limit=100");
  const items = body?.items ?? [];
  fill(
    $("webhook-rows"),
    items.map((item) =>
      row([time(item.at), item.updates, (item.kinds ?? []).join(", ") || "—", item.accepted, item.duplicates, item.refused, item.answer]),
    ),
    body?.error ? body.error.message : "No deliveries yet.",
  );
}

function timeline(message) {
  const box = el("div", null, "timeline");
  for (const step of message.statuses ?? []) {
    const chip = el("span", step.status, `step ${step.status}`);
    chip.title = time(step.at);
    box.append(chip);
  }
  if (message.errorCode) box.append(el("span", `code ${message.errorCode}`, "step failed"));
  return box;
}

function party(message, side) {
  return mask(message[`${side}Phone`] ?? message[`${side}UserId`]);
}

function renderMessages(items) {
  fill(
    $("message-rows"),
    items.map((message) => {
      const tr = row([time(message.createdAt), message.direction, message.type, party(message, "from"), party(message, "to"), timeline(message)]);
      tr.className = "pick";
      tr.tabIndex = 0;
      const open = () => detail(message);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (event) => (event.key === "Enter" || event.key === " ") && (event.preventDefault(), open()));
      return tr;
    }),
    "No messages match.",
  );
}

function detail(message) {
  const box = $("message-detail");
  const shown = { ...message };
  for (const key of ["fromPhone", "toPhone", "fromUserId", "toUserId", "waMessageId", "graphMessageId"]) shown[key] = mask(shown[key]);
  box.replaceChildren(el("h3", "Message"), el("pre", JSON.stringify(shown, null, 2)), el("p", "The service keeps no message text.", "muted"));
  box.hidden = false;
  box.focus();
}

async function loadMessages() {
  const { body } = await api("messages?limit=100");
  messages = body?.items ?? [];
  renderMessages(messages);
}

async function search(query) {
  const q = query.trim();
  if (!q) return renderMessages(messages);
  if (q.startsWith("wamid.")) {
    const { ok, body } = await api(`messages/${encodeURIComponent(q)}`);
    return renderMessages(ok ? [body] : []);
  }
  // A phone or user id: the newest SEARCH_PAGES pages, filtered here (the
  // service has no index by contact).
  const matches = (m) => ["fromPhone", "toPhone", "fromUserId", "toUserId"].some((key) => m[key] && String(m[key]).includes(q));
  const found = [];
  let cursor = null;
  for (let page = 0; page < SEARCH_PAGES; page++) {
    const { body } = await api(`messages?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    found.push(...(body?.items ?? []).filter(matches));
    cursor = body?.nextCursor;
    if (!cursor) break;
  }
  renderMessages(found);
}

async function events() {
  const state = $("event-state").value;
  const [{ body }, endpoints] = await Promise.all([api(`events/deliveries?state=${state}&limit=100`), api("events/endpoints")]);
  const configured = endpoints.body?.endpoints ?? [];
  $("endpoints").textContent = configured.length
    ? configured.map((e) => `#${e.index} ${e.host}: ${e.delivered} delivered, ${e.failed} failed`).join(" · ")
    : "No endpoints configured (WATS_EVENTS_ENDPOINTS).";
  fill(
    $("event-rows"),
    (body?.items ?? []).map((event) => {
      const retry = el("button", "Retry");
      retry.type = "button";
      retry.setAttribute("aria-label", `Retry event ${event.id}`);
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        await api(`events/deliveries/${encodeURIComponent(event.id)}/retry`, { method: "POST" }).catch(failed);
        await events().catch(failed);
      });
      const answer = event.lastStatus ?? event.lastError ?? "—";
      return row([time(event.createdAt), event.endpoint ?? "removed", event.kind, event.state, event.attempts, time(event.nextAttemptAt), answer, retry]);
    }),
    body?.error ? body.error.message : `No ${state} events.`,
  );
}

async function outbox() {
  const state = $("outbox-state").value;
  const { body } = await api(`outbox?state=${state}&limit=100`);
  fill(
    $("outbox-rows"),
    (body?.items ?? []).map((item) =>
      row([time(item.createdAt), item.type, item.state, item.attempts, time(item.nextAttemptAt), item.lastError?.code ?? "—"]),
    ),
    body?.error ? body.error.message : `No ${state} sends.`,
  );
}

function newKey() {
  $("send-key").value = crypto.randomUUID();
}

async function prepareSend() {
  if (!$("send-key").value) newKey();
}

async function sendMessage() {
  const body = { to: $("send-to").value.trim(), text: $("send-text").value };
  const from = $("send-from").value.trim();
  if (from) body.from = from;
  const answer = await api("messages/text", {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": $("send-key").value },
    body: JSON.stringify(body),
  });
  $("send-answer").textContent = `${answer.status}\n${JSON.stringify(answer.body, null, 2)}`;
  if (answer.ok) newKey();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const ok = await signIn($("token").value.trim());
  if (!ok) signOut("That token was not accepted.");
  $("token").value = "";
});
$("signout").addEventListener("click", () => signOut());
$("nav").addEventListener("click", (event) => {
  const view = event.target.closest("button")?.dataset.view;
  if (view) show(view);
});
$("reveal").addEventListener("change", () => refresh().catch(failed));
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  search($("search").value).catch(failed);
});
$("event-state").addEventListener("change", () => events().catch(failed));
$("outbox-state").addEventListener("change", () => outbox().catch(failed));
$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage().catch(failed);
});

if (token()) signIn(token()).then((ok) => ok || signOut("That token was not accepted. Sign in again."));
else signOut();
